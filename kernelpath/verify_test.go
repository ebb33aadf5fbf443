package kernelpath

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"
)

// maxVerified bounds the instructions the verifier walks through for any one program. Its
// time is part of every `mctun up`, and so of a member's outage when it restarts: when the
// flow window's unmark carried its position from word to word, mctun_account took 140,000
// instructions and 0.65 s, mctun_ingress 69,000 and 0.06 s; now each takes under 5,000.
// The count is exact for a kernel, unlike a time.
const maxVerified = 20_000

var processed = regexp.MustCompile(`processed (\d+) insns`)

// TestProgramsVerifyQuickly loads each collection with the verifier's statistics and checks
// how much work each program cost it.
func TestProgramsVerifyQuickly(t *testing.T) {
	needRoot(t)
	for name, load := range map[string]func() (*ebpf.CollectionSpec, error){"sender": loadSender, "receiver": loadReceiver} {
		spec, err := load()
		if err != nil {
			t.Fatal(err)
		}
		coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for prog, p := range coll.Programs {
			n, err := insnsVerified(p.VerifierLog)
			if err != nil {
				t.Errorf("%s: %v", prog, err)
				continue
			}
			t.Logf("%s: the verifier processed %d instructions", prog, n)
			if n > maxVerified {
				t.Errorf("%s: the verifier processed %d instructions, more than %d: `mctun up` slows down with it\n%s", prog, n, maxVerified, p.VerifierLog)
			}
		}
		coll.Close()
	}
}

func insnsVerified(log string) (int, error) {
	m := processed.FindStringSubmatch(log)
	if m == nil {
		return 0, fmt.Errorf("no statistics in the verifier's log: %q", log)
	}
	return strconv.Atoi(m[1])
}
