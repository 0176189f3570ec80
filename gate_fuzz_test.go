package freemium_test

import (
	"context"
	"errors"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/freemiumkit/freemium"
)

// FuzzGateInput: any user ID, token count and key either is refused with
// the right sentinel error and writes nothing, or is accepted and counted.
func FuzzGateInput(f *testing.F) {
	f.Add("u1", int64(10), "k")
	f.Add("", int64(0), "")
	f.Add("a\x00b", int64(-1), "k\x00")
	f.Add("用户", int64(1e15), "")
	f.Add("\xff", int64(1e15+1), "\xfe")
	f.Fuzz(func(t *testing.T, user string, tokens int64, key string) {
		ctx := context.Background()
		g, err := freemium.New(freemium.Config{Store: freemium.NewMemoryStore(), Free: freemium.Plan{Limit: freemium.Unlimited}})
		if err != nil {
			t.Fatal(err)
		}
		validUser := user != "" && len(user) <= 256 && utf8.ValidString(user) && !containsControl(user)
		validTokens := tokens >= 0 && tokens <= freemium.MaxTokens
		validKey := len(key) <= 256 && utf8.ValidString(key) && !containsControl(key)

		err = g.Record(ctx, user, tokens, key)
		switch {
		case !validUser:
			if !errors.Is(err, freemium.ErrInvalidUserID) {
				t.Fatalf("Record(%q) = %v, want ErrInvalidUserID", user, err)
			}
			return
		case !validTokens:
			if !errors.Is(err, freemium.ErrInvalidTokens) {
				t.Fatalf("Record(%d) = %v, want ErrInvalidTokens", tokens, err)
			}
		case !validKey:
			if !errors.Is(err, freemium.ErrInvalidIdempotencyKey) {
				t.Fatalf("Record key %q = %v, want ErrInvalidIdempotencyKey", key, err)
			}
		case err != nil:
			t.Fatalf("Record(%q, %d, %q) = %v", user, tokens, key, err)
		}
		u, err := g.Usage(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		want := int64(0)
		if validTokens && validKey {
			want = tokens
		}
		if u.Used != want {
			t.Fatalf("Used = %d after Record(%d), want %d", u.Used, tokens, want)
		}
		r, err := g.Reserve(ctx, user, tokens)
		if validTokens != (err == nil) {
			t.Fatalf("Reserve(%d) = %v", tokens, err)
		}
		if err == nil && !r.OK() {
			t.Fatalf("Reserve on an unlimited plan not OK: %+v", r.Decision())
		}
	})
}

func containsControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}
