// Command benchtable prints one table of what the benchmarks last measured (`make bench`): every metric of
// every benchmark line in the *.txt files of a directory (Go's benchmark format; each bench-* make target
// keeps its last output in build/bench/<target>.txt), then issue 18's goals, each against its ceiling.
//
//	go run ./internal/benchtable [-dir build/bench] [-dist build/dist]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// metric is one "value unit" pair of a benchmark line.
type metric struct {
	bench, unit string
	value       float64
	file        string
	at          time.Time
}

// goal is one of issue 18's targets: the metric of the benchmarks whose name matches, at most ceiling.
type goal struct {
	what    string
	bench   *regexp.Regexp
	unit    string
	ceiling float64
}

var goals = []goal{
	{"a module task costs at most a ping", regexp.MustCompile(`^BenchmarkTaskCost/`), "worst/ping", 1},
	{"offline outage at 2k keys, s", regexp.MustCompile(`^BenchmarkMigrationOutage/offline/2k/`), "outage-s", 20},
	{"offline outage at 100k keys, s", regexp.MustCompile(`^BenchmarkMigrationOutage/offline/100k/`), "outage-s", 60},
	{"online outage at 100k keys, s", regexp.MustCompile(`^BenchmarkMigrationOutage/online/100k/`), "outage-s", 40},
}

// tarballCeiling is Ansible Galaxy's upload limit.
const tarballCeiling = 20 << 20

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+\d+\s+(.*)$`)

func parse(r io.Reader, file string, at time.Time) []metric {
	var out []metric
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil || f[i+1] == "ns/op" {
				continue
			}
			out = append(out, metric{bench: m[1], unit: f[i+1], value: v, file: file, at: at})
		}
	}
	return out
}

func main() {
	dir := flag.String("dir", "build/bench", "where the bench-* targets keep their output")
	dist := flag.String("dist", "build/dist", "where make collection puts the tarball")
	flag.Parse()
	files, _ := filepath.Glob(filepath.Join(*dir, "*.txt"))
	var all []metric
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		st, _ := f.Stat()
		all = append(all, parse(f, filepath.Base(path), st.ModTime())...)
		f.Close()
	}
	if len(all) == 0 {
		fmt.Println("no benchmark figures yet: run make bench (or one of its bench-* targets)")
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "benchmark\tmetric\tvalue\tmeasured (file)")
	for _, m := range all {
		fmt.Fprintf(w, "%s\t%s\t%.4g\t%s (%s)\n", m.bench, m.unit, m.value, m.at.UTC().Format("2006-01-02 15:04"), m.file)
	}
	w.Flush()
	fmt.Println()
	w = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "issue 18 goal\tbenchmark\tmeasured\tceiling\tratio\tmet")
	for _, g := range goals {
		found := false
		for _, m := range all {
			if g.bench.MatchString(m.bench) && m.unit == g.unit {
				found = true
				fmt.Fprintf(w, "%s\t%s\t%.3g\t%g\t%.2f\t%s\n", g.what, m.bench, m.value, g.ceiling, m.value/g.ceiling, yes(m.value <= g.ceiling))
			}
		}
		if !found {
			fmt.Fprintf(w, "%s\t(not measured)\t\t%g\t\t\n", g.what, g.ceiling)
		}
	}
	if tars, _ := filepath.Glob(filepath.Join(*dist, "*.tar.gz")); len(tars) > 0 {
		for _, t := range tars {
			if st, err := os.Stat(t); err == nil {
				fmt.Fprintf(w, "the collection tarball, every architecture, MiB\t%s\t%.2f\t%.0f\t%.2f\t%s\n", filepath.Base(t),
					float64(st.Size())/(1<<20), float64(tarballCeiling)/(1<<20), float64(st.Size())/tarballCeiling, yes(st.Size() <= tarballCeiling))
			}
		}
	}
	w.Flush()
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}
