package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/lab"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The README's "use the modules in your own role" example, run as it stands there: a member removed
// from the cluster by hand comes back as a healthy voter holding every key, its old member dir kept;
// a second run changes nothing.
func TestReadmeRoleExample(t *testing.T) {
	role, play := readmeBlock(t, "# roles/rejoin_member/tasks/main.yml"), readmeBlock(t, "# rejoin.yml")
	dir := t.TempDir()
	for path, body := range map[string]string{"roles/rejoin_member/tasks/main.yml": role, "rejoin.yml": play} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, path), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	l := lab.Up(t, lab.Spec{Hosts: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cli := l.V3Client(t)
	if _, err := cli.Put(ctx, "/example/before-removal", "kept"); err != nil {
		t.Fatal(err)
	}
	gone := l.Members()[2]
	removeMemberByHand(ctx, t, cli, gone.Name)

	env := lab.EnvMap(ansibletest.Install(t))
	run := func() *lab.Result {
		t.Helper()
		res, err := l.Playbook(ctx, lab.Run{Playbook: filepath.Join(dir, "rejoin.yml"), Env: env,
			ExtraVars: map[string]any{"rejoin_host": gone.Name, "rejoin_via": l.Members()[0].Name}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Err != nil {
			t.Fatalf("the README's playbook failed: %v\n%s", res.Err, res.Failures())
		}
		return res
	}
	run()

	list, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	voters := 0
	for _, m := range list.Members {
		if !m.IsLearner && m.Name != "" {
			voters++
		}
	}
	if voters != 3 || len(list.Members) != 3 {
		t.Fatalf("members after the re-join: %v, want 3 started voters", list.Members)
	}
	for _, h := range l.Members() {
		if _, err := cli.Status(ctx, h.ClientURL()); err != nil {
			t.Errorf("%s does not answer: %v", h.Name, err)
		}
	}
	own := l.V3Client(t, gone)
	resp, err := own.Get(ctx, "/example/before-removal", clientv3.WithSerializable())
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "kept" {
		t.Errorf("the re-joined member's own copy of the key: %v %v", resp, err)
	}
	if out, err := l.Exec(gone, "sh", "-c", "ls -d /var/lib/etcd/member.old-*"); err != nil {
		t.Errorf("the removed member's old dir was not kept: %s %v", out, err)
	}

	if again := run(); changedTasks(again) != 0 {
		t.Errorf("a second run changed %d tasks, want none", changedTasks(again))
	}
}

// readmeBlock returns the fenced yaml block of README.md whose first line is first.
func readmeBlock(t *testing.T, first string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ansibletest.Root(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, block := range strings.Split(string(b), "```yaml\n")[1:] {
		body, _, _ := strings.Cut(block, "```")
		if strings.HasPrefix(body, first+"\n") || strings.HasPrefix(body, first+":") {
			return body
		}
	}
	t.Fatalf("README.md has no yaml block starting with %q", first)
	return ""
}
