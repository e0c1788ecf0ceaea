package routing

import (
	"encoding/base64"
	"errors"
	"fmt"
	"unicode/utf8"
)

// MaxUserLen bounds a user id in bytes, so a subject built from it stays well inside what NATS
// accepts in one protocol line.
const MaxUserLen = 256

// ErrInvalidUser is returned for a user id or user token that cannot name a user.
var ErrInvalidUser = errors.New("routing: invalid user")

// plainMax is the longest user id that is its own token.
const plainMax = 64

// UserToken returns the subject token for a user id: the id itself when it is 1 to 64
// characters of [A-Za-z0-9_-], otherwise "~" followed by the unpadded base64url of its bytes.
// The token never holds '.', '*', '>' or white space, and distinct ids give distinct tokens.
func UserToken(user string) (string, error) {
	if user == "" {
		return "", fmt.Errorf("%w: empty id", ErrInvalidUser)
	}
	if len(user) > MaxUserLen {
		return "", fmt.Errorf("%w: id of %d bytes, the limit is %d", ErrInvalidUser, len(user), MaxUserLen)
	}
	if !utf8.ValidString(user) {
		return "", fmt.Errorf("%w: id is not valid UTF-8", ErrInvalidUser)
	}
	if isPlain(user) {
		return user, nil
	}
	return "~" + base64.RawURLEncoding.EncodeToString([]byte(user)), nil
}

// UserFromToken is the inverse of UserToken.
func UserFromToken(tok string) (string, error) {
	if encoded, ok := cutTilde(tok); ok {
		b, err := base64.RawURLEncoding.Strict().DecodeString(encoded)
		if err != nil {
			return "", fmt.Errorf("%w: token %q: %v", ErrInvalidUser, tok, err)
		}
		user := string(b)
		// Reject tokens that UserToken would not have produced, so the mapping stays one-to-one.
		if again, err := UserToken(user); err != nil || again != tok {
			return "", fmt.Errorf("%w: token %q is not canonical", ErrInvalidUser, tok)
		}
		return user, nil
	}
	if tok == "" || !isPlain(tok) {
		return "", fmt.Errorf("%w: token %q", ErrInvalidUser, tok)
	}
	return tok, nil
}

// canonicalToken reports whether tok is a user token as UserToken writes it; plain tokens, the
// usual case, are checked without allocating.
func canonicalToken(tok string) bool {
	if isPlain(tok) {
		return tok != ""
	}
	_, err := UserFromToken(tok)
	return err == nil
}

func cutTilde(s string) (string, bool) {
	if len(s) > 1 && s[0] == '~' {
		return s[1:], true
	}
	return "", false
}

func isPlain(s string) bool {
	if len(s) > plainMax {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
