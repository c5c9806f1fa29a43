package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// defaultLogKeyFile is the verifier key provlogd writes on first start in
// its default data directory; provlog uses it when no key is given.
const defaultLogKeyFile = "provlog-data/log.pub"

// Where a log key comes from.
const (
	keyFromFlag    = "--log-key"
	keyFromEnv     = "PROVLOG_LOG_KEY"
	keyFromDefault = "the default when neither --log-key nor PROVLOG_LOG_KEY is set"
)

// logKey is the log's note verifier key and where it came from, so that a
// checkpoint that does not verify can be reported with the key it was
// checked against: the implicit default may be another log's key.
type logKey struct {
	vkey   string // "name+hash+base64"
	source string // keyFromFlag, keyFromEnv or keyFromDefault
	file   string // the file it was read from, or "" if given inline
}

// String names the key (its name and hash) and where it came from.
func (k *logKey) String() string {
	id := k.vkey
	if name, rest, ok := strings.Cut(k.vkey, "+"); ok {
		hash, _, _ := strings.Cut(rest, "+")
		id = name + "+" + hash
	}
	switch {
	case k.source == keyFromDefault:
		return fmt.Sprintf("log key %s from %s, %s; is it this log's key?", id, k.file, k.source)
	case k.file != "":
		return fmt.Sprintf("log key %s from %s (%s)", id, k.file, k.source)
	}
	return fmt.Sprintf("log key %s from %s", id, k.source)
}

// keySpec returns the --log-key value (VKEY, @FILE or FILE) and where it
// comes from: the flag, else PROVLOG_LOG_KEY, else the default file.
func (g *globals) keySpec() (arg, source string) {
	if g.cmd.PersistentFlags().Changed("log-key") {
		return g.logKey, keyFromFlag
	}
	if v := os.Getenv("PROVLOG_LOG_KEY"); v != "" {
		return v, keyFromEnv
	}
	return "@" + defaultLogKeyFile, keyFromDefault
}

// errNoLogKey says how to give the log's key when there is none.
var errNoLogKey = usageErr("no log verifier key: pass --log-key VKEY or --log-key @FILE (e.g. @%s), or set PROVLOG_LOG_KEY; provlogd writes %s when it first starts (provlog wait waits for it)", defaultLogKeyFile, defaultLogKeyFile)

// verifierKey returns the log's note verifier key (see --log-key) and
// remembers it, with where it came from, for error messages.
func (g *globals) verifierKey() (string, error) {
	arg, source := g.keySpec()
	k, err := loadLogKey(arg, source)
	if err != nil {
		if source == keyFromDefault && errors.Is(err, fs.ErrNotExist) {
			return "", errNoLogKey
		}
		return "", err
	}
	g.key = k
	return k.vkey, nil
}

// loadLogKey reads a log key given as VKEY, @FILE (the first non-empty
// line of FILE) or the path of an existing FILE, and checks it is a note
// verifier key. Errors are usage errors; a missing @FILE wraps
// fs.ErrNotExist.
func loadLogKey(arg, source string) (*logKey, error) {
	k := &logKey{source: source}
	file, isFile := strings.CutPrefix(arg, "@")
	if !isFile {
		v := strings.TrimSpace(arg)
		_, verr := note.NewVerifier(v)
		if verr == nil {
			k.vkey = v
			return k, nil
		}
		fi, serr := os.Stat(arg)
		switch {
		case serr == nil && fi.Mode().IsRegular():
			file = arg // a path to a key file, without the @
		case serr == nil:
			return nil, usageErr("%s %q is not a verifier key (%v) and not a regular file", source, arg, verr)
		default:
			return nil, usageErr("%s %q is neither a verifier key (%v) nor a file (%w); give the key as provlogd prints it (name+hash+base64), or @FILE", source, arg, verr, serr)
		}
	}
	k.file = file
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, usageErr("reading the log key (%s): %w", source, err)
	}
	for line := range strings.Lines(string(b)) {
		if line = strings.TrimSpace(line); line != "" {
			if _, err := note.NewVerifier(line); err != nil {
				return nil, usageErr("log key file %s (%s): %w: want one line name+hash+base64, as in provlogd's DATA/log.pub", file, source, err)
			}
			k.vkey = line
			return k, nil
		}
	}
	return nil, usageErr("log key file %s (%s) is empty", file, source)
}
