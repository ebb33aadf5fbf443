package legacy

import (
	"errors"
	"strings"
	"testing"

	"mctun/config"
)

// FuzzImport: whatever a file holds, Import either refuses it as not the original's (a
// *config.Error naming the file) or makes a config that mctun accepts, with every problem
// named by file and on one line. The seed corpus, testdata/fuzz/FuzzImport, is mctun
// import's golden inputs (cmd/mctun/testdata/import).
func FuzzImport(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Import([]File{{Name: "in.json", Data: data}})
		if err != nil {
			var cerr *config.Error
			if !errors.As(err, &cerr) || len(cerr.Problems) != 1 || cerr.Problems[0].File != "in.json" {
				t.Fatalf("Import: %v", err)
			}
			return
		}
		out := res.TOML()
		if _, _, err := config.Parse("imported.toml", []byte(out)); err != nil {
			t.Fatalf("mctun does not accept the import:\n%v\n%s", err, out)
		}
		for _, p := range res.Problems {
			if p.File != "in.json" || strings.ContainsAny(p.String(), "\n\r") {
				t.Errorf("problem %q", p.String())
			}
		}
	})
}
