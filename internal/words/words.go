// Package words is how mctun writes counts and lists for people, the same in the daemon's
// messages and the command line's output.
package words

import (
	"fmt"
	"net/netip"
	"strings"
)

// Plural writes n and the noun, with an s unless n is 1: "1 member", "3 members".
func Plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// JoinAddrs writes addresses, or prefixes, as "a, b, c".
func JoinAddrs[T interface {
	netip.Addr | netip.Prefix
	String() string
}](addrs []T) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
