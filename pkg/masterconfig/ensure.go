package masterconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/etcdops/etcd/pkg/endpoint"
	"github.com/etcdops/etcd/pkg/module"
)

// Spec is what etcd_master_config is asked to do.
type Spec struct {
	Path string
	// StorageBackend is "etcd3" (switch), "etcd2" (revert: remove both arguments) or "" (only read).
	StorageBackend string
	// EtcdURLs, when set, become etcdClientInfo.urls (the etcd endpoints the master uses).
	EtcdURLs []string
	Now      time.Time
}

// Result reports the file's state; TTLs are read in every mode so the TTL step can use them.
type Result struct {
	Path                   string    `json:"path"`
	Exists                 bool      `json:"exists"`
	StorageBackend         string    `json:"storage_backend"`
	PreviousStorageBackend string    `json:"previous_storage_backend"`
	EtcdURLs               []string  `json:"etcd_urls"`
	PreviousEtcdURLs       []string  `json:"previous_etcd_urls"`
	BackupFile             string    `json:"backup_file,omitempty"`
	TTLs                   TokenTTLs `json:"ttls"`
}

// Validate checks the Spec without reading the file: etcd_urls must be client URLs.
func (s Spec) Validate() error {
	for _, u := range s.EtcdURLs {
		if msg := endpoint.Problem(u, ""); msg != "" {
			return &module.ParamError{Param: "etcd_urls", Msg: msg}
		}
	}
	return nil
}

// Ensure brings the file to the requested backend (backup first), or only reads it.
func Ensure(t *module.Task, s Spec) (Result, error) {
	r := Result{Path: s.Path}
	c, err := Load(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		if s.StorageBackend != "" || len(s.EtcdURLs) > 0 {
			return r, &module.ParamError{Param: "path", Msg: fmt.Sprintf("%s does not exist; point path at the "+
				"master's configuration (OpenShift 3.x: /etc/origin/master/master-config.yaml)", s.Path)}
		}
		return r, nil
	}
	if err != nil {
		return r, err
	}
	r.Exists = true
	if r.TTLs, err = c.TTLs(); err != nil {
		return r, fmt.Errorf("%s: %w", s.Path, err)
	}
	r.PreviousStorageBackend = backendName(c.StorageBackend())
	r.StorageBackend = r.PreviousStorageBackend
	r.PreviousEtcdURLs = c.EtcdURLs()
	r.EtcdURLs = r.PreviousEtcdURLs
	var changed bool
	switch s.StorageBackend {
	case "etcd3":
		changed, err = c.SetEtcd3()
	case "etcd2":
		changed, err = c.UnsetEtcd3()
	}
	if err != nil {
		return r, err
	}
	if len(s.EtcdURLs) > 0 {
		set, err := c.SetEtcdURLs(s.EtcdURLs)
		if err != nil {
			return r, err
		}
		if set {
			changed = true
			r.EtcdURLs = s.EtcdURLs
		}
	}
	if !changed {
		return r, nil
	}
	t.Changed()
	if s.StorageBackend != "" {
		r.StorageBackend = s.StorageBackend
	}
	before, _ := os.ReadFile(s.Path)
	after, err := c.Bytes()
	if err != nil {
		return r, err
	}
	t.SetDiff(string(before), string(after))
	if t.CheckMode {
		return r, nil
	}
	r.BackupFile, err = c.Save(s.Now)
	return r, err
}

// backendName names the unset default the way OpenShift 3.6/3.7 reads it.
func backendName(v string) string {
	if v == "" {
		return "etcd2"
	}
	return v
}
