package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// ErrNotJSON is returned for a stored payload that is not JSON text in UTF-8.
var ErrNotJSON = errors.New("event: payload is not JSON in UTF-8")

// Compact appends src to dst without insignificant whitespace, after checking that it is one
// JSON value in valid UTF-8; otherwise it appends nothing and returns ErrNotJSON. It is the one
// check that every stored payload passes before it is written to a client, whichever path
// (the shared feed or a connection's own consumer) brought it: json.Compact alone lets invalid
// UTF-8 through.
func Compact(dst *bytes.Buffer, src []byte) error {
	if !utf8.Valid(src) {
		return ErrNotJSON
	}
	if err := json.Compact(dst, src); err != nil {
		return ErrNotJSON
	}
	return nil
}
