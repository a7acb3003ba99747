package etcdconn

import "testing"

func TestVersionAtLeast(t *testing.T) {
	for v, want := range map[string]bool{"3.2.32": false, "3.3.0": true, "3.4.23": true, "3.10.1": true, "2.3.8": false, "": false, "x": false} {
		if VersionAtLeast(v, 3, 3) != want {
			t.Errorf("%q: want %v", v, want)
		}
	}
}
