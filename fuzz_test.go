package freemium_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
)

// validUserID is the Gate's rule for user IDs: 1 to 256 bytes of UTF-8
// without control characters.
func validUserID(s string) bool {
	return s != "" && len(s) <= 256 && utf8.ValidString(s) && !containsControl(s)
}

// FuzzMiddlewareRequest sends any method, path, X-User-ID and estimate
// through Gate.Middleware on a MemoryStore, a few times over, with a handler
// that reports tokens (or not). It never panics; answers 200 (the handler
// ran), 401 (no valid user), 402 (blocked, with a problem document that
// decodes) or 500 (an estimate the Gate refuses), never 503; and the usage
// recorded for the user is exactly the sum of what the gated handlers that
// ran spent: the tokens they reported, or the estimate when they reported
// none.
func FuzzMiddlewareRequest(f *testing.F) {
	f.Add("POST", "/api/reports", "u1", int64(100), int64(250), uint8(3))
	f.Add("POST", "/api/reports", "u1", int64(100), int64(-1), uint8(3))
	f.Add("POST", "/api/", "u1", int64(4000), int64(4000), uint8(3))
	f.Add("POST", "/api/x", "u1", freemium.MaxTokens, freemium.MaxTokens+1, uint8(2))
	f.Add("POST", "/api/x", "u1", freemium.MaxTokens+1, int64(1), uint8(1))
	f.Add("POST", "/api/x", "u1", int64(-5), int64(1), uint8(1))
	f.Add("GET", "/api/x", "u1", int64(5), int64(7), uint8(1))
	f.Add("POST", "/api", "u1", int64(5), int64(7), uint8(1))
	f.Add("POST", "/api/../api/x", "u1", int64(5), int64(7), uint8(1))
	f.Add("POST", "//api/x", "u1", int64(5), int64(7), uint8(1))
	f.Add("post", "/api/x", "u1", int64(5), int64(7), uint8(1))
	f.Add("POST", "/api/x", "", int64(5), int64(7), uint8(1))
	f.Add("POST", "/api/x", "a\x00b", int64(5), int64(7), uint8(1))
	f.Add("POST", "/api/x", "\xff", int64(5), int64(7), uint8(1))
	f.Add("POST", "/api/x", strings.Repeat("u", 257), int64(5), int64(7), uint8(1))
	f.Add("POST", "/api/x", "用户", int64(0), int64(0), uint8(4))
	f.Add("", "", "u1", int64(1), int64(1), uint8(1))
	f.Add("POST", "api/x", "u1", int64(1), int64(1), uint8(1))
	f.Fuzz(func(t *testing.T, method, path, user string, estimate, report int64, repeat uint8) {
		clock := freemiumtest.NewClock(time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC))
		g, err := freemium.New(freemium.Config{
			Store: freemium.NewMemoryStore(), Now: clock.Now,
			Free:       freemium.Plan{Limit: 5000, FirstReportFree: true},
			UpgradeURL: "https://example.com/upgrade",
			Logger:     slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		var ran bool
		mw := g.Middleware(freemium.MiddlewareOptions{
			UserID: func(r *http.Request) (string, error) {
				return r.Header.Get("X-User-ID"), nil
			},
			Estimate: func(*http.Request) int64 { return estimate },
			Gated:    []string{"POST /api/"},
		})
		handler := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ran = true
			if report >= 0 {
				freemium.ReportTokens(r.Context(), report)
			}
			w.WriteHeader(http.StatusOK)
		}))

		ctx := context.Background()
		var ledger int64 // tokens the gated handlers that ran spent
		for range 1 + repeat%4 {
			ran = false
			req := (&http.Request{
				Method: method, URL: &url.URL{Path: path}, Host: "example.com",
				Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header: http.Header{}, Body: http.NoBody,
			}).WithContext(ctx)
			req.Header.Set("X-User-ID", user)
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)

			gated := rec.Header().Get("X-Usage-Plan") != ""
			switch rec.Code {
			case http.StatusOK:
				if !ran {
					t.Fatalf("%q %q: 200 without the handler running", method, path)
				}
				if gated {
					if report >= 0 {
						ledger += min(report, freemium.MaxTokens)
					} else {
						ledger += estimate
					}
				}
			case http.StatusUnauthorized:
				if validUserID(user) {
					t.Fatalf("%q %q: 401 for the valid user %q", method, path, user)
				}
			case http.StatusPaymentRequired:
				if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
					t.Fatalf("a 402 of Content-Type %q", ct)
				}
				var p freemium.Problem
				dec := json.NewDecoder(rec.Body)
				dec.DisallowUnknownFields()
				if err := dec.Decode(&p); err != nil {
					t.Fatalf("a 402's problem does not decode: %v", err)
				}
				if p.Status != http.StatusPaymentRequired || !strings.HasPrefix(p.Type, "urn:freemium:") || p.Detail == "" {
					t.Fatalf("a 402's problem: %+v", p)
				}
				if !gated {
					t.Fatalf("a 402 without X-Usage-* headers")
				}
			case http.StatusInternalServerError:
				if estimate >= 0 && estimate <= freemium.MaxTokens {
					t.Fatalf("%q %q: 500 for the valid estimate %d", method, path, estimate)
				}
			default:
				t.Fatalf("%q %q user %q estimate %d: status %d, want 200, 401, 402 or 500: %s", method, path, user, estimate, rec.Code, rec.Body)
			}
			if ran != (rec.Code == http.StatusOK) {
				t.Fatalf("status %d, handler ran: %v", rec.Code, ran)
			}
			if gated && method != http.MethodPost {
				t.Fatalf("a %q request was gated by the pattern POST /api/", method)
			}
		}
		if !validUserID(user) {
			if ledger != 0 {
				t.Fatalf("the invalid user %q was metered %d tokens", user, ledger)
			}
			return
		}
		u, err := g.Usage(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		if u.Used != ledger || u.Reserved != 0 {
			t.Fatalf("user %q: Used %d, Reserved %d after requests whose handlers spent %d", user, u.Used, u.Reserved, ledger)
		}
	})
}
