// Package memberconf reads and writes an etcd member's configuration in the flavour a host keeps
// it in: an environment file of ETCD_* lines (/etc/etcd/etcd.conf, OpenShift / RHEL), a systemd
// drop-in whose ExecStart passes the flags (CoreOS's etcd-member.service.d/20-clct-etcd-member.conf),
// or a unit whose ExecStart passes the flags with ${VARIABLES} from an EnvironmentFile of node
// addresses (StorageOS's etcd3.service and /etc/etcd.conf). All read into, and are written from, the
// same ETCD_* names, so the roles never see the flavour.
package memberconf

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Flavours.
const (
	EnvFile = "env_file"
	DropIn  = "dropin"
	Unit    = "unit"
)

// envLine is the environment-file syntax etcd_facts has always read: optional export, optional quotes.
var envLine = regexp.MustCompile(`(?m)^[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*["']?([^"'\n]*?)["']?[ \t]*$`)

// validVar is what a variable of an EnvironmentFile may be called.
var validVar = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// parseVars returns every variable of an environment file (the last of a repeated name wins).
func parseVars(b []byte) map[string]string {
	vars := map[string]string{}
	for _, m := range envLine.FindAllSubmatch(b, -1) {
		vars[string(m[1])] = string(m[2])
	}
	return vars
}

// validName is what an ETCD_* setting may be called (it becomes a line prefix or a flag name).
var validName = regexp.MustCompile(`^ETCD_[A-Z0-9_]+$`)

// ParseEnv returns the ETCD_* settings of an environment file (the last of a repeated name wins).
func ParseEnv(b []byte) map[string]string {
	env := map[string]string{}
	for k, v := range parseVars(b) {
		if validName.MatchString(k) {
			env[k] = v
		}
	}
	return env
}

// Change is one setting to write: Value nil removes it.
type Change struct {
	Name  string
	Value *string
}

// sortedAs turns a settings map into changes in name order (the order lines are appended in), checking
// every name against valid (invalid says why a name is not).
func sortedAs(settings map[string]*string, valid *regexp.Regexp, invalid string) ([]Change, error) {
	var out []Change
	for k, v := range settings {
		if !valid.MatchString(k) {
			return nil, fmt.Errorf("%q %s", k, invalid)
		}
		out = append(out, Change{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ApplyEnv writes changes into an environment file as ansible.builtin.lineinfile with
// regexp "^NAME=" did before (byte for byte): a value replaces the last line starting NAME= or is
// appended at the end; a removal deletes every such line.
func ApplyEnv(b []byte, changes []Change) []byte {
	lines := strings.SplitAfter(string(b), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for _, c := range changes {
		prefix := c.Name + "="
		if c.Value == nil {
			kept := lines[:0]
			for _, l := range lines {
				if !strings.HasPrefix(l, prefix) {
					kept = append(kept, l)
				}
			}
			lines = kept
			continue
		}
		line := prefix + *c.Value + "\n"
		last := -1
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				last = i
			}
		}
		switch {
		case last >= 0:
			lines[last] = line
		default:
			if n := len(lines); n > 0 && !strings.HasSuffix(lines[n-1], "\n") && !strings.HasSuffix(lines[n-1], "\r") {
				lines = append(lines, "\n")
			}
			lines = append(lines, line)
		}
	}
	return []byte(strings.Join(lines, ""))
}

// WriteFile replaces path atomically (a temporary file beside it, synced, renamed), keeping the
// mode and owner of the file it replaces (0644 root for a new one, its directory created 0755). With
// backup, the old file is first copied to PATH.PID.YYYY-MM-DD@HH:MM:SS~ (Ansible's backup name),
// which is returned.
func WriteFile(path string, data []byte, backup bool, now time.Time) (string, error) {
	mode, uid, gid := os.FileMode(0o644), -1, -1
	old, readErr := os.ReadFile(path)
	st, statErr := os.Stat(path)
	if statErr == nil {
		mode = st.Mode().Perm()
		if s, ok := st.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(s.Uid), int(s.Gid)
		}
	} else if !os.IsNotExist(statErr) {
		return "", statErr
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	backupFile := ""
	if backup && readErr == nil {
		backupFile = fmt.Sprintf("%s.%d.%s~", path, os.Getpid(), now.Format("2006-01-02@15:04:05"))
		if err := writeSynced(backupFile, old, mode, uid, gid); err != nil {
			return "", err
		}
	}
	tmp := fmt.Sprintf("%s.etcdops-%d.tmp", path, os.Getpid())
	if err := writeSynced(tmp, data, mode, uid, gid); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return backupFile, nil
}

func writeSynced(path string, data []byte, mode os.FileMode, uid, gid int) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil { // not the umask's
		f.Close()
		return err
	}
	if uid >= 0 {
		if err := f.Chown(uid, gid); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
