package systemd

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/coreos/go-systemd/v22/unit"
)

// Option is one "Name=Value" line of a section, e.g. unit.NewUnitOption("Service", "EnvironmentFile", "/run/x.env").
type Option = unit.UnitOption

// NewOption is unit.NewUnitOption.
func NewOption(section, name, value string) *Option { return unit.NewUnitOption(section, name, value) }

// DropIn renders a drop-in file: the comment lines (each prefixed "# "), then the options grouped by
// section in their order, serialised by go-systemd's unit package.
func DropIn(comment []string, opts ...*Option) ([]byte, error) {
	var out []byte
	for _, c := range comment {
		out = append(out, "# "+c+"\n"...)
	}
	body, err := io.ReadAll(unit.Serialize(opts))
	if err != nil {
		return nil, err
	}
	return append(out, body...), nil
}

// DropInDir is unitName's drop-in directory under a unit directory such as /run/systemd/system.
// unitName must have passed UnitName.
func DropInDir(unitDir, unitName string) string { return filepath.Join(unitDir, unitName+".d") }

// WriteDropIn writes a drop-in file (0644; its directory 0755 when missing). The caller reloads systemd.
func WriteDropIn(path string, comment []string, opts ...*Option) error {
	b, err := DropIn(comment, opts...)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// RemoveFiles removes those of paths that exist and reports whether it removed any.
func RemoveFiles(paths ...string) (bool, error) {
	removed := false
	for _, p := range paths {
		err := os.Remove(p)
		if err == nil {
			removed = true
		} else if !errors.Is(err, fs.ErrNotExist) {
			return removed, err
		}
	}
	return removed, nil
}
