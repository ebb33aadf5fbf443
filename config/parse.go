package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// Load reads the config file at path and its managed file, ManagedPath(path), if that exists,
// and validates and merges them with Merge. A missing managed file is normal: mctun's commands
// create it. A file that cannot be read gives an error that names its path.
func Load(path string) (*Config, []Problem, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	managed, err := os.ReadFile(ManagedPath(path))
	if errors.Is(err, fs.ErrNotExist) {
		managed = nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	return Merge(path, data, managed)
}

// Parse validates a config file on its own, as Merge does when there is no managed file.
func Parse(name string, data []byte) (*Config, []Problem, error) {
	return Merge(name, data, nil)
}

// Merge validates the config file cfgPath, whose content is main, and its managed file, whose
// content is managed (nil: there is none), each on its own and then their union, and returns
// the effective config. It reads no file: Load reads both, and the daemon calls Merge to check
// a managed file before writing it. Problems and Config.Path name the config file cfgPath, and
// the managed file ManagedPath(cfgPath).
//
// The warnings are problems Merge worked around, such as a member listed twice. If anything is
// wrong, Merge returns a nil Config and an *Error that holds every error found; the warnings
// are still returned. Problems come in file order, as an operator reads them: the config
// file's, then the managed file's, each sorted by line, problems of a file as a whole first. A
// problem between the two files, such as a group defined in both, is the managed file's.
func Merge(cfgPath string, main, managed []byte) (*Config, []Problem, error) {
	conf := &checker{name: cfgPath, data: main}
	raw := conf.decode(schema, "")
	var mgd *checker
	var mraw *rawConfig
	if managed != nil {
		mgd = &checker{name: ManagedPath(cfgPath), data: managed, managed: true}
		mraw = mgd.decode(managedSchema, cfgPath)
	}
	cfg := merge(conf, raw, mgd, mraw)

	var errs, warns []Problem
	for _, c := range []*checker{conf, mgd} {
		if c != nil {
			c.locate()
			errs = append(errs, c.errs...)
			warns = append(warns, c.warns...)
		}
	}
	if len(errs) > 0 {
		return nil, warns, &Error{Problems: errs}
	}
	return cfg, warns, nil
}

// ManagedPath returns the managed file of the config file configPath: in the same directory,
// its name without the .toml extension, plus .managed.toml. /etc/mctun/mctun.toml has
// /etc/mctun/mctun.managed.toml; a name without .toml just gets .managed.toml appended.
func ManagedPath(configPath string) string {
	return strings.TrimSuffix(configPath, ".toml") + ".managed.toml"
}

// decode decodes the checker's file strictly against schema; conf is the config file's name
// when the checker's is the managed file. It returns nil if the file is not TOML the decoder
// understands.
func (c *checker) decode(schema map[string]bool, conf string) *rawConfig {
	var raw rawConfig
	// A reader, not toml.Decode(string(data)): the decoder copies its input anyway, and a
	// large config need not be copied once more.
	md, err := toml.NewDecoder(bytes.NewReader(c.data)).Decode(&raw)
	if err != nil {
		c.decodeError(md, err)
		return nil
	}
	c.unknownKeys(md, schema, conf)
	return &raw
}

// rawConfig is a file as decoded, before validation. Tables are structs; every key that holds
// a value is a rawValue, so that a value of the wrong type is one more problem for validation to
// report rather than the end of decoding.
type rawConfig struct {
	Key        rawValue    `toml:"key"`
	Port       rawValue    `toml:"port"`
	SecretFile rawValue    `toml:"secret_file"`
	Encrypt    rawValue    `toml:"encrypt"`
	Datapath   rawValue    `toml:"datapath"`
	Log        *rawLog     `toml:"log"`
	Metrics    *rawMetrics `toml:"metrics"`
	Source     *rawSource  `toml:"source"`
	Member     *rawMember  `toml:"member"`
}

type rawLog struct {
	Format rawValue `toml:"format"`
	File   rawValue `toml:"file"`
	Level  rawValue `toml:"level"`
}

type rawMetrics struct {
	Listen    rawValue `toml:"listen"`
	PerMember rawValue `toml:"per_member"`
}

type rawSource struct {
	Interface rawValue   `toml:"interface"`
	JoinFrom  rawValue   `toml:"join_from"`
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

// schema lists every key a config file may have, by its path without array indices. true marks
// a key that holds a value; false a table.
var schema = map[string]bool{
	"key":                  true,
	"port":                 true,
	"secret_file":          true,
	"encrypt":              true,
	"datapath":             true,
	"log":                  false,
	"log.format":           true,
	"log.file":             true,
	"log.level":            true,
	"metrics":              false,
	"metrics.listen":       true,
	"metrics.per_member":   true,
	"source":               false,
	"source.interface":     true,
	"source.join_from":     true,
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

// managedSchema lists the keys a managed file may have: the groups and sources the commands
// manage, nothing that needs a restart.
var managedSchema = map[string]bool{
	"source":               false,
	"source.group":         false,
	"source.group.address": true,
	"source.group.port":    true,
	"source.group.members": true,
	"member":               false,
	"member.sources":       true,
}

// unknownKeys reports every key outside schema, once, at its outermost unknown table: a
// misspelled [sorce] is one problem, not one per key in it. Keys below a value (an inline table
// where an integer belongs) are left to validation, which reports the value's type. In the
// managed file, a key only the config file may have is not allowed rather than unknown, and
// the problem says to put it in conf.
//
// It checks md.Keys() against the schema rather than using md.Undecoded(), because the decoder
// matches key names to fields case-insensitively: "Port" would decode into port unnoticed.
func (c *checker) unknownKeys(md toml.MetaData, allowed map[string]bool, conf string) {
	reported := map[string]bool{}
	group := -1 // index of the current [[source.group]]
	for _, k := range md.Keys() {
		if len(k) == 2 && k[0] == "source" && k[1] == "group" && md.Type(k...) == "ArrayHash" {
			group++
		}
		for i := 1; i <= len(k); i++ {
			path := k[:i].String()
			leaf, ok := allowed[path]
			if !ok {
				key := indexKey(k[:i], group)
				if !reported[key] {
					reported[key] = true
					if _, known := schema[path]; known && c.managed {
						c.errorf(key, "not allowed in the managed file; put it in %s", conf)
					} else {
						c.errorf(key, "unknown key")
					}
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
	for _, t := range []string{"log", "metrics", "source", "member"} {
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

// locate fills in the file name of every problem and the line of those that name a key, and
// sorts them by line, problems of the file as a whole first.
func (c *checker) locate() {
	var ix *lineIndex
	for _, ps := range [][]Problem{c.errs, c.warns} {
		for i := range ps {
			p := &ps[i]
			p.File = c.name
			if p.Line == 0 && p.Key != "" {
				if ix == nil {
					ix = scanLines(c.data)
				}
				p.Line = ix.line(p.Key)
			}
		}
	}
	byLine := func(a, b Problem) int { return a.Line - b.Line }
	slices.SortStableFunc(c.errs, byLine)
	slices.SortStableFunc(c.warns, byLine)
}
