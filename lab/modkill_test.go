package lab

import (
	"strings"
	"testing"
)

// The task watch reads the progress callback's lines as they arrive (split anywhere) and signals the
// Nth start of the watched task with the count of task starts at that moment.
func TestTaskWatch(t *testing.T) {
	w := &taskWatch{task: "r : copy", nth: 2, started: make(chan int, 1)}
	var b strings.Builder
	w.next = &b
	in := "10:00:00 PLAY  p\n10:00:01 TASK  r : copy\n10:00:02 FAIL  h: x\n10:00:03 TASK  other\n10:00:04 TASK  r : copy\n10:00:05 TASK  after\n"
	for i := 0; i < len(in); i += 7 {
		if _, err := w.Write([]byte(in[i:min(i+7, len(in))])); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case gen := <-w.started:
		if gen != 3 {
			t.Errorf("signalled at task start %d, want 3", gen)
		}
	default:
		t.Fatal("the second start of the task was not signalled")
	}
	if g := w.generation(); g != 4 {
		t.Errorf("%d task starts counted, want 4", g)
	}
	if b.String() != in {
		t.Errorf("the caller's progress writer got %q", b.String())
	}
}

// ModuleProcess finds only the collection's executable running the named module.
func TestIsModule(t *testing.T) {
	if isModule(1, "etcd_v2_copy") {
		t.Error("PID 1 taken for a module")
	}
	if ModuleProcess(&Host{InitPID: 1}, "etcd_no_such_module") != 0 {
		t.Error("a module that does not run was found")
	}
}
