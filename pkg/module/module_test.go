package module

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type inner struct {
	Prefix string        `arg:"prefix" required:"true"`
	TTL    time.Duration `arg:"ttl" default:"1h"`
}

type params struct {
	Name     string         `arg:"name" required:"true"`
	State    string         `arg:"state" default:"present" choices:"present,absent"`
	Learner  bool           `arg:"learner" default:"true"`
	Count    int            `arg:"count" default:"3"`
	Interval time.Duration  `arg:"interval" default:"0.5s"`
	List     []string       `arg:"list"`
	Password string         `arg:"password" secret:"true"`
	Leases   []inner        `arg:"leases"`
	Env      string         `arg:"env_only" env:"MODULE_TEST_ENV"`
	Extra    map[string]any `arg:"extra"`
}

func execute(t *testing.T, args map[string]any, fn Func) map[string]any {
	t.Helper()
	path := filepath.Join(t.TempDir(), "args")
	b, _ := json.Marshal(args)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var p params
	out := Execute(context.Background(), path, &p, func(ctx context.Context, task *Task) (any, error) {
		if fn == nil {
			return map[string]any{"params": p, "check": task.CheckMode}, nil
		}
		return fn(ctx, task)
	})
	res := map[string]any{}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	return res
}

func TestLenientConversionAndDefaults(t *testing.T) {
	t.Setenv("MODULE_TEST_ENV", "from-env")
	res := execute(t, map[string]any{"name": "a", "learner": "no", "count": "7", "interval": 2,
		"list": "x, y,,z", "leases": []any{map[string]any{"prefix": "/p", "ttl": "10s"}},
		"extra":               map[string]any{"backup": "b-1", "n": 2, "nested": map[string]any{"k": []any{"v"}}},
		"_ansible_check_mode": true, "_ansible_unknown_future_key": 1}, nil)
	if res["failed"] == true {
		t.Fatalf("unexpected failure: %v", res["msg"])
	}
	p := res["params"].(map[string]any)
	if p["State"] != "present" || p["Learner"] != false || p["Count"] != 7.0 ||
		p["Interval"] != float64(2*time.Second) || p["Env"] != "from-env" {
		t.Fatalf("decoded %v", p)
	}
	if l := p["List"].([]any); len(l) != 3 || l[2] != "z" {
		t.Fatalf("list %v", l)
	}
	if ls := p["Leases"].([]any); ls[0].(map[string]any)["TTL"] != float64(10*time.Second) {
		t.Fatalf("leases %v", ls)
	}
	if e := p["Extra"].(map[string]any); e["backup"] != "b-1" || e["n"] != 2.0 || e["nested"].(map[string]any)["k"].([]any)[0] != "v" {
		t.Fatalf("free-form dict %v", e)
	}
	if res["check"] != true {
		t.Fatal("check mode not seen")
	}
}

func TestBadInputNamesTheParameter(t *testing.T) {
	cases := []struct {
		args map[string]any
		want []string
	}{
		{map[string]any{"name": "a", "nmae": "b"}, []string{"nmae", "valid parameters are", "name"}},
		{map[string]any{}, []string{"parameter name", "required"}},
		{map[string]any{"name": "a", "state": "gone"}, []string{"parameter state", "present,absent"}},
		{map[string]any{"name": "a", "learner": "maybe"}, []string{"parameter learner", "boolean"}},
		{map[string]any{"name": "a", "count": "many"}, []string{"parameter count", "integer"}},
		{map[string]any{"name": "a", "interval": "soon"}, []string{"parameter interval", "duration"}},
		{map[string]any{"name": "a", "leases": []any{map[string]any{"ttl": "1s"}}}, []string{"leases[0].prefix", "required"}},
		{map[string]any{"name": "a", "extra": "k=v"}, []string{"parameter extra", "a dict"}},
	}
	for _, c := range cases {
		res := execute(t, c.args, nil)
		msg, _ := res["msg"].(string)
		if res["failed"] != true {
			t.Errorf("%v: not failed", c.args)
		}
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%v: message %q lacks %q", c.args, msg, w)
			}
		}
	}
}

// The runner never rewrites its output: a password that is also JSON text ("1", "true", "e", "failed")
// leaves a good result good and a failure failed (a text scrub once turned these into MODULE FAILURE
// or a success). Secrets stay out of the output because nothing quotes them.
func TestSecretValuesLeaveResultsIntact(t *testing.T) {
	for _, pw := range []string{"1", "true", "e", "failed", "changed"} {
		ok := execute(t, map[string]any{"name": "a", "password": pw}, func(ctx context.Context, task *Task) (any, error) {
			task.Changed()
			return map[string]any{"members": []string{"e1"}, "ready": true}, nil
		})
		if ok["failed"] == true || ok["changed"] != true || ok["ready"] != true {
			t.Errorf("password %q: good run became %v", pw, ok)
		}
		bad := execute(t, map[string]any{"name": "a", "password": pw}, func(ctx context.Context, task *Task) (any, error) {
			return nil, errors.New("authentication failed (check user and password)")
		})
		if bad["failed"] != true || !strings.Contains(bad["msg"].(string), "authentication failed") {
			t.Errorf("password %q: failing run became %v", pw, bad)
		}
	}
	// A password of the wrong type is described, never quoted.
	res := execute(t, map[string]any{"name": "a", "password": []any{"s3cr3t"}}, nil)
	if b, _ := json.Marshal(res); res["failed"] != true || strings.Contains(string(b), "s3cr3t") {
		t.Fatalf("wrong-type password: %s", b)
	}
}

func TestNoLogCensorsResult(t *testing.T) {
	res := execute(t, map[string]any{"name": "a", "_ansible_no_log": true}, func(ctx context.Context, task *Task) (any, error) {
		task.Changed()
		return map[string]any{"token": "abc"}, nil
	})
	if _, ok := res["token"]; ok || res["changed"] != true {
		t.Fatalf("no_log result %v", res)
	}
}

func TestPanicBecomesFailure(t *testing.T) {
	res := execute(t, map[string]any{"name": "a"}, func(ctx context.Context, task *Task) (any, error) {
		var m map[string]int
		m["x"] = 1
		return nil, nil
	})
	if res["failed"] != true || !strings.Contains(res["msg"].(string), "panic") {
		t.Fatalf("panic result %v", res)
	}
}

func TestPartialResultOnError(t *testing.T) {
	res := execute(t, map[string]any{"name": "a", "_ansible_diff": true}, func(ctx context.Context, task *Task) (any, error) {
		task.Changed()
		task.SetDiff("a", "b")
		return nil, &Error{Err: context.DeadlineExceeded, Result: map[string]int{"copied": 5}}
	})
	if res["failed"] != true || res["copied"] != 5.0 || res["diff"] == nil || !strings.Contains(res["msg"].(string), "timed out") {
		t.Fatalf("partial result %v", res)
	}
}

func TestExclusive(t *testing.T) {
	if err := Exclusive(map[string]bool{"id": true, "name": true, "peer_urls": false}); err == nil ||
		!strings.Contains(err.Error(), "id, name") {
		t.Fatalf("got %v", err)
	}
	if err := Exclusive(map[string]bool{"id": true}); err != nil {
		t.Fatal(err)
	}
}
