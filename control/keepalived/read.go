package keepalived

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Files is where Import reads a keepalived.conf and the files it includes:
// the host's file system ([OS]) or, in tests, a map.
type Files interface {
	ReadFile(name string) ([]byte, error)
	// Glob returns the names that match pattern (filepath.Match syntax) in
	// lexical order, as glob(3) does.
	Glob(pattern string) ([]string, error)
}

// OS reads the host's files.
var OS Files = osFiles{}

type osFiles struct{}

func (osFiles) ReadFile(name string) ([]byte, error)  { return os.ReadFile(name) }
func (osFiles) Glob(pattern string) ([]string, error) { return filepath.Glob(pattern) }

// Pos is where a statement starts: a file as it was named (the main file as
// given to Import, an included one joined to its includer's directory) and a
// line, from 1.
type Pos struct {
	File string
	Line int
}

// String returns "file:line".
func (p Pos) String() string { return p.File + ":" + strconv.Itoa(p.Line) }

// SyntaxError is a file that keepalived's grammar cannot read: an unbalanced
// brace, an unterminated quote, an include that cannot be read.
type SyntaxError struct {
	Pos Pos
	Msg string
}

func (e *SyntaxError) Error() string { return e.Pos.String() + ": " + e.Msg }

// Limits of the reader; keepalived has none, these only keep a loop of
// includes or a pathological brace pattern from running away.
const (
	maxIncludeDepth = 32    // files open at once: far more than any real layout nests
	maxFilesRead    = 10000 // files read in all: a diamond of includes can grow exponentially
	maxGlobPatterns = 1024  // csh brace expansions of one include pattern
)

// line is one logical line of keepalived's grammar: its words, or a lone
// "{" or "}" (keepalived splits a line at every brace outside quotes).
type line struct {
	pos   Pos
	words []string
}

// reader reads a file and what it includes into lines, as keepalived's
// read_line does (lib/parser.c): includes are spliced in where they stand,
// so a block may open in one file and close in another.
type reader struct {
	files Files
	lines []line
	open  []string // the files being read, innermost last
	reads int      // files read so far
	warn  func(p Pos, format string, args ...any)
	order map[string]int // file → order first read, for sorting warnings
}

func (r *reader) read(name string, from *Pos) error {
	switch {
	case slices.Contains(r.open, name):
		return &SyntaxError{*from, fmt.Sprintf("include loop: %s is already being read (%s)", name, strings.Join(append(r.open, name), " → "))}
	case len(r.open) >= maxIncludeDepth:
		return &SyntaxError{*from, fmt.Sprintf("includes nest more than %d files deep", maxIncludeDepth)}
	case r.reads >= maxFilesRead:
		return &SyntaxError{*from, fmt.Sprintf("includes read more than %d files", maxFilesRead)}
	}
	r.reads++
	data, err := r.files.ReadFile(name)
	if err != nil {
		if from == nil {
			return err
		}
		return &SyntaxError{*from, fmt.Sprintf("include: %v", err)}
	}
	if _, ok := r.order[name]; !ok {
		r.order[name] = len(r.order)
	}
	r.open = append(r.open, name)
	defer func() { r.open = r.open[:len(r.open)-1] }()

	for i, raw := range strings.Split(string(data), "\n") {
		pos := Pos{name, i + 1}
		text, ok := decomment(raw)
		if !ok {
			return &SyntaxError{pos, "unterminated quote"}
		}
		if text == "" {
			continue
		}
		if pattern, ok := includePattern(text); ok {
			if err := r.include(pattern, pos); err != nil {
				return err
			}
			continue
		}
		switch text[0] {
		case '@':
			r.warn(pos, "%s: not carried over (a line for one config id only: import-keepalived evaluates no config id)", shorten(text))
			continue
		case '$':
			r.warn(pos, "%s: not carried over (import-keepalived does not expand parameter definitions)", shorten(text))
			continue
		case '~':
			r.warn(pos, "%s: not carried over (import-keepalived does not expand ~SEQ or ~LST)", shorten(text))
			continue
		}
		for _, piece := range splitBraces(text) {
			words, ok := splitWords(piece)
			if !ok {
				return &SyntaxError{pos, "unterminated quote"}
			}
			if len(words) > 0 {
				r.lines = append(r.lines, line{pos, words})
			}
		}
	}
	return nil
}

// include reads the files that pattern matches, relative to the directory of
// the file being read, in lexical order.
func (r *reader) include(pattern string, pos Pos) error {
	if pattern == "" {
		r.warn(pos, "include: not carried over (no file named)")
		return nil
	}
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(filepath.Dir(r.open[len(r.open)-1]), pattern)
	}
	patterns, ok := expandBraces(pattern)
	if !ok {
		return &SyntaxError{pos, fmt.Sprintf("include %s: more than %d brace expansions", pattern, maxGlobPatterns)}
	}
	matched := false
	for _, p := range patterns {
		names, err := r.files.Glob(p)
		if err != nil {
			return &SyntaxError{pos, fmt.Sprintf("include %s: %v", p, err)}
		}
		for _, n := range names {
			matched = true
			if err := r.read(n, &pos); err != nil {
				return err
			}
		}
	}
	if !matched {
		r.warn(pos, "include %s: no file matches", pattern)
	}
	return nil
}

// decomment removes a comment — from the first '!' or '#' outside double
// quotes — and the whitespace around the line, and turns "\#" and "\!" into
// '#' and '!' (keepalived's decomment). ok is false for an unterminated quote.
func decomment(s string) (string, bool) {
	var b strings.Builder
	quote := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			quote = !quote
		case c == '\\' && i+1 < len(s):
			if !quote && (s[i+1] == '#' || s[i+1] == '!') {
				i++
				c = s[i]
			} else {
				b.WriteByte(c)
				i++
				c = s[i]
			}
		case !quote && (c == '!' || c == '#'):
			return strings.Trim(b.String(), " \t\r\v\f"), true
		}
		b.WriteByte(c)
	}
	return strings.Trim(b.String(), " \t\r\v\f"), !quote
}

// includePattern recognises keepalived's include line and its variants
// (includer, includem, includew, includeb, includea: which errors keepalived
// forgives, the same to an importer) and returns the rest of the line.
func includePattern(text string) (string, bool) {
	rest, ok := strings.CutPrefix(text, "include")
	if !ok {
		return "", false
	}
	if rest != "" && strings.ContainsRune("ramwb", rune(rest[0])) {
		rest = rest[1:]
	}
	if rest == "" {
		return "", true
	}
	if rest[0] != ' ' && rest[0] != '\t' {
		return "", false // a keyword that starts with "include"
	}
	return strings.TrimSpace(rest), true
}

// splitBraces splits a line before and after every '{' and '}' outside
// double quotes, so that each brace is a line of its own.
func splitBraces(s string) []string {
	var out []string
	quote := false
	start := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			quote = !quote
		case !quote && (c == '{' || c == '}'):
			if t := strings.TrimSpace(s[start:i]); t != "" {
				out = append(out, t)
			}
			out = append(out, s[i:i+1])
			start = i + 1
		}
	}
	if t := strings.TrimSpace(s[start:]); t != "" {
		out = append(out, t)
	}
	return out
}

// splitWords splits a line into words as keepalived's alloc_strvec does: at
// whitespace, with a word that starts with '"' running to the next '"' (the
// quotes dropped, no escapes); an unquoted word also ends at a '"'.
func splitWords(s string) ([]string, bool) {
	var words []string
	for {
		s = strings.TrimLeft(s, " \t\r\v\f")
		if s == "" {
			return words, true
		}
		if s[0] == '"' {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, false
			}
			words = append(words, s[1:1+end])
			s = s[2+end:]
			continue
		}
		end := strings.IndexAny(s, " \t\r\v\f\"")
		if end < 0 {
			end = len(s)
		}
		words = append(words, s[:end])
		s = s[end:]
	}
}

// expandBraces expands csh-style braces, "a{b,c{d,e}}f" → abf, acdf, acef, as
// keepalived's glob(GLOB_BRACE) does; a brace without a matching close or a
// comma is literal. ok is false past maxGlobPatterns.
func expandBraces(s string) ([]string, bool) {
	open := strings.IndexByte(s, '{')
	if open < 0 {
		return []string{s}, true
	}
	depth, close := 0, -1
	var commas []int
	for i := open; i < len(s) && close < 0; i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				close = i
			}
		case ',':
			if depth == 1 {
				commas = append(commas, i)
			}
		}
	}
	if close < 0 || len(commas) == 0 {
		// Not an alternation: keep the brace and expand what follows it.
		rest, ok := expandBraces(s[open+1:])
		for i := range rest {
			rest[i] = s[:open+1] + rest[i]
		}
		return rest, ok
	}
	prefix, suffix := s[:open], s[close+1:]
	var out []string
	from := open + 1
	for _, end := range append(commas, close) {
		alts, ok := expandBraces(prefix + s[from:end] + suffix)
		if !ok || len(out)+len(alts) > maxGlobPatterns {
			return nil, false
		}
		out = append(out, alts...)
		from = end + 1
	}
	return out, true
}

// shorten bounds how much of a line a message repeats.
func shorten(s string) string {
	const max = 80
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
