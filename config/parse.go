package config

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/BurntSushi/toml"
)

// Load reads the config file at path and parses it with Parse, naming it path in every Problem.
// A file that cannot be read gives an error that names the path.
func Load(path string) (*Config, []Problem, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes data strictly, validates it and fills in the defaults. name is the file name
// that Problems and Config.Path carry.
//
// The warnings are problems Parse worked around, such as a member listed twice. If anything is
// wrong, Parse returns a nil Config and an *Error that holds every error found; the warnings
// found so far are still returned.
func Parse(name string, data []byte) (*Config, []Problem, error) {
	var c checker
	cfg := c.parse(data)
	c.locate(name, data)
	// In file order, as an operator reads them; problems of the file as a whole first.
	byLine := func(a, b Problem) int { return a.Line - b.Line }
	slices.SortStableFunc(c.errs, byLine)
	slices.SortStableFunc(c.warns, byLine)
	if len(c.errs) > 0 {
		return nil, c.warns, &Error{Problems: c.errs}
	}
	cfg.Path = name
	return cfg, c.warns, nil
}

// parse decodes data into a rawConfig and validates it in one pass.
func (c *checker) parse(data []byte) *Config {
	var raw rawConfig
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		c.decodeError(md, err)
		return nil
	}
	c.unknownKeys(md)
	return c.config(&raw)
}

// rawConfig is the file as decoded, before validation. Tables are structs; every key that holds
// a value is a rawValue, so that a value of the wrong type is one more problem for validation to
// report rather than the end of decoding.
type rawConfig struct {
	Key    rawValue   `toml:"key"`
	Port   rawValue   `toml:"port"`
	Source *rawSource `toml:"source"`
	Member *rawMember `toml:"member"`
}

type rawSource struct {
	Interface rawValue   `toml:"interface"`
	Group     []rawGroup `toml:"group"`
}

type rawGroup struct {
	Address rawValue `toml:"address"`
	Port    rawValue `toml:"port"`
	Members rawValue `toml:"members"`
}

type rawMember struct {
	TUN     rawValue `toml:"tun"`
	MTU     rawValue `toml:"mtu"`
	Sources rawValue `toml:"sources"`
	Groups  rawValue `toml:"groups"`
}

// rawValue is a value as the decoder found it: int64, string, []any, map[string]any, ...; nil
// when the key is absent (TOML has no null). Integers stay int64, so 70000 reaches validation as
// 70000 instead of overflowing a uint16.
type rawValue struct {
	v any
}

// UnmarshalTOML implements toml.Unmarshaler.
func (r *rawValue) UnmarshalTOML(v any) error {
	r.v = v
	return nil
}

// schema lists every key a config may have, by its path without array indices. true marks a key
// that holds a value; false a table.
var schema = map[string]bool{
	"key":                  true,
	"port":                 true,
	"source":               false,
	"source.interface":     true,
	"source.group":         false,
	"source.group.address": true,
	"source.group.port":    true,
	"source.group.members": true,
	"member":               false,
	"member.tun":           true,
	"member.mtu":           true,
	"member.sources":       true,
	"member.groups":        true,
}

// unknownKeys reports every key outside the schema, once, at its outermost unknown table: a
// misspelled [sorce] is one problem, not one per key in it. Keys below a value (an inline table
// where an integer belongs) are left to validation, which reports the value's type.
//
// It checks md.Keys() against the schema rather than using md.Undecoded(), because the decoder
// matches key names to fields case-insensitively: "Port" would decode into port unnoticed.
func (c *checker) unknownKeys(md toml.MetaData) {
	reported := map[string]bool{}
	group := -1 // index of the current [[source.group]]
	for _, k := range md.Keys() {
		if len(k) == 2 && k[0] == "source" && k[1] == "group" && md.Type(k...) == "ArrayHash" {
			group++
		}
		for i := 1; i <= len(k); i++ {
			leaf, known := schema[k[:i].String()]
			if !known {
				key := indexKey(k[:i], group)
				if !reported[key] {
					reported[key] = true
					c.errorf(key, "unknown key")
				}
				break
			}
			if leaf {
				break
			}
		}
	}
}

// indexKey writes k as a key path, giving a key inside [[source.group]] the index of the
// current entry. An inline array of tables (group = [{...}]) gets no index: md.Keys() does not
// tell its entries apart.
func indexKey(k toml.Key, group int) string {
	if len(k) > 2 && k[0] == "source" && k[1] == "group" && group >= 0 {
		return fmt.Sprintf("source.group[%d].%s", group, k[2:])
	}
	return k.String()
}

// decodeError reports why the decoder gave up: a syntax error, with the decoder's line, or a
// table written as a value (source = 1), which the decoder reports without the key's index.
func (c *checker) decodeError(md toml.MetaData, err error) {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		c.errs = append(c.errs, Problem{Line: pe.Position.Line, Msg: pe.Message})
		return
	}
	n := len(c.errs)
	for _, t := range []string{"source", "member"} {
		if typ := md.Type(t); typ != "" && typ != "Hash" {
			c.errorf(t, "want a table, got %s; write it as [%s]", tomlType(typ), t)
		}
	}
	if typ := md.Type("source", "group"); typ != "" && typ != "ArrayHash" && len(c.errs) == n {
		c.errorf("source.group", "want an array of tables; write each group as [[source.group]]")
	}
	if len(c.errs) == n {
		c.errs = append(c.errs, Problem{Msg: err.Error()})
	}
}

// tomlType turns a MetaData.Type name into the word the TOML spec uses.
func tomlType(typ string) string {
	switch typ {
	case "Integer":
		return "an integer"
	case "Float":
		return "a float"
	case "String":
		return "a string"
	case "Bool":
		return "a boolean"
	case "Array", "ArrayHash":
		return "an array"
	case "Datetime":
		return "a date-time"
	}
	return typ
}

// locate fills in the file name of every problem and the line of those that name a key.
func (c *checker) locate(name string, data []byte) {
	var ix *lineIndex
	for _, ps := range [][]Problem{c.errs, c.warns} {
		for i := range ps {
			p := &ps[i]
			p.File = name
			if p.Line == 0 && p.Key != "" {
				if ix == nil {
					ix = scanLines(data)
				}
				p.Line = ix.line(p.Key)
			}
		}
	}
}
