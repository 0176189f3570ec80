package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/freemiumkit/freemium"
)

func (e *env) migrate(ctx context.Context, what string) error {
	if what == "up" {
		if err := e.store.Migrate(ctx); err != nil {
			return err
		}
	}
	st, err := e.store.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	return e.emit(st, func(w io.Writer) {
		fmt.Fprintln(w, "VERSION\tNAME\tAPPLIED")
		for _, m := range st {
			applied := "pending"
			if !m.AppliedAt.IsZero() {
				applied = stamp(m.AppliedAt)
			}
			fmt.Fprintf(w, "%d\t%s\t%s\n", m.Version, m.Name, applied)
		}
	})
}

// usageView is usage's JSON.
type usageView struct {
	User        string         `json:"user"`
	Usage       freemium.Usage `json:"usage"`
	FirstReport string         `json:"first_report"` // used, held, available, or none (the plan has no free report)
	Anchor      time.Time      `json:"anchor,omitzero"`
	CustomerID  string         `json:"customer_id,omitempty"`
	Mirror      mirrorView     `json:"mirror"`
	Notes       []string       `json:"notes,omitempty"`
}

type mirrorView struct {
	SyncedAt      time.Time          `json:"synced_at,omitzero"`
	AgeSeconds    float64            `json:"age_seconds"`
	Version       int64              `json:"version"`
	Subscriptions []subscriptionView `json:"subscriptions"`
}

type subscriptionView struct {
	ID          string    `json:"id"`
	Status      string    `json:"status"`
	PriceIDs    []string  `json:"price_ids"`
	PaidPlan    string    `json:"paid_plan,omitempty"`
	PeriodStart time.Time `json:"period_start,omitzero"`
	PeriodEnd   time.Time `json:"period_end,omitzero"`
	AsOf        time.Time `json:"as_of"`
}

func (e *env) usage(ctx context.Context, user string) error {
	in, err := e.gate.Inspect(ctx, user)
	if err != nil {
		return err
	}
	now := time.Now()
	v := usageView{User: user, Usage: in.Usage, Anchor: in.Anchor, CustomerID: in.CustomerID,
		Mirror: mirrorView{SyncedAt: in.Mirror.SyncedAt, Version: in.Mirror.Version, Subscriptions: []subscriptionView{}}}
	switch {
	case in.Usage.FirstReportUsed:
		v.FirstReport = "used"
	case in.FirstReportHeld:
		v.FirstReport = "held"
	case in.Usage.FirstReportAvailable:
		v.FirstReport = "available"
	default:
		v.FirstReport = "none"
	}
	if !in.Mirror.SyncedAt.IsZero() {
		v.Mirror.AgeSeconds = now.Sub(in.Mirror.SyncedAt).Round(time.Second).Seconds()
	}
	for _, s := range in.Mirror.Subscriptions {
		v.Mirror.Subscriptions = append(v.Mirror.Subscriptions, subscriptionView{ID: s.ID, Status: string(s.Status),
			PriceIDs: s.PriceIDs, PaidPlan: s.PaidPlan, PeriodStart: s.CurrentPeriodStart, PeriodEnd: s.CurrentPeriodEnd, AsOf: s.AsOf})
	}
	switch {
	case in.Fetched:
		v.Notes = append(v.Notes, fmt.Sprintf("the mirror is older than %v: the plan is decided on the subscriptions Stripe reports now (not stored)", e.maxAge))
	case in.FetchError != "" && in.Mirror.Version == 0:
		v.Notes = append(v.Notes, "no mirror of this user's subscriptions, and they were not looked up ("+fetchError(in.FetchError)+"): the free plan")
	case in.FetchError != "":
		v.Notes = append(v.Notes, fmt.Sprintf("the mirror is older than %v and was not looked up again (%s): decided on the mirror as it is",
			e.maxAge, fetchError(in.FetchError)))
	}
	if in.Fallback && in.Mirror.Version != 0 {
		v.Notes = append(v.Notes, "decided on the free plan by the config's fallback")
	}
	return e.emit(v, func(w io.Writer) {
		u := in.Usage
		fmt.Fprintf(w, "user\t%s\n", user)
		fmt.Fprintf(w, "plan\t%s\n", u.Plan)
		period := "lifetime (never resets)"
		if !u.PeriodEnd.IsZero() {
			period = stamp(u.PeriodStart) + " to " + stamp(u.PeriodEnd)
		}
		fmt.Fprintf(w, "period\t%s\n", period)
		used := fmt.Sprintf("%s of %s tokens", count(u.Used), count(u.Limit))
		if u.Limit != freemium.Unlimited {
			used += fmt.Sprintf(" (%s%%)", strconv.FormatFloat(u.Percentage, 'f', -1, 64))
		}
		if u.Warning {
			used += ", warned"
		}
		fmt.Fprintf(w, "used\t%s\n", used)
		fmt.Fprintf(w, "held\t%s\n", count(u.Reserved))
		fmt.Fprintf(w, "remaining\t%s\n", count(u.Remaining))
		if u.Credits > 0 {
			credits := count(u.Credits) + " tokens"
			if !u.CreditsExpireAt.IsZero() {
				credits += ", the first expiring " + stamp(u.CreditsExpireAt)
			}
			fmt.Fprintf(w, "credits\t%s\n", credits)
		}
		fmt.Fprintf(w, "first report\t%s\n", v.FirstReport)
		if v.CustomerID != "" {
			fmt.Fprintf(w, "customer\t%s\n", v.CustomerID)
		}
		switch {
		case in.Mirror.Version == 0:
			fmt.Fprintf(w, "mirror\tnone\n")
		case in.Mirror.SyncedAt.IsZero():
			fmt.Fprintf(w, "mirror\tversion %d, marked for refresh\n", in.Mirror.Version)
		default:
			fmt.Fprintf(w, "mirror\tversion %d, synced %s (%v ago)\n", in.Mirror.Version, stamp(in.Mirror.SyncedAt),
				time.Duration(v.Mirror.AgeSeconds)*time.Second)
		}
		for _, s := range v.Mirror.Subscriptions {
			fmt.Fprintf(w, "  %s\t%s %s, %s to %s\n", s.ID, s.Status, strings.Join(s.PriceIDs, ","), stamp(s.PeriodStart), stamp(s.PeriodEnd))
		}
		for _, n := range v.Notes {
			fmt.Fprintf(w, "note\t%s\n", n)
		}
	})
}

func (e *env) funnel(ctx context.Context, since time.Duration) error {
	now := time.Now().UTC()
	f, err := e.gate.Funnel(ctx, now.Add(-since), now.Add(time.Microsecond))
	if err != nil {
		return err
	}
	return e.emit(f, func(w io.Writer) {
		fmt.Fprintf(w, "from\t%s\n", stamp(f.From))
		fmt.Fprintf(w, "to\t%s\n", stamp(f.To))
		fmt.Fprintf(w, "hit a limit\t%d\n", f.LimitHit)
		fmt.Fprintf(w, "prompted\t%d\n", f.Prompted)
		fmt.Fprintf(w, "converted\t%d\n", f.Converted)
		fmt.Fprintf(w, "conversion rate\t%.1f%%\n", f.ConversionRate*100)
		if f.Converted > 0 {
			fmt.Fprintf(w, "median time to convert\t%v\n", f.MedianTimeToConvert.Round(time.Second))
		}
		for plan, n := range f.ByPlan {
			fmt.Fprintf(w, "  to %s\t%d\n", plan, n)
		}
		fmt.Fprintf(w, "top-ups\t%d (%s tokens)\n", f.TopUps, count(f.TopUpTokens))
		fmt.Fprintf(w, "prompted, then topped up\t%d\n", f.ToppedUp)
	})
}

// ledgerView is an entry in ledger's JSON.
type ledgerView struct {
	At        time.Time `json:"at"`
	Kind      string    `json:"kind"`
	Tokens    int64     `json:"tokens"`
	Key       string    `json:"key"`
	Reason    string    `json:"reason,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// ledger lists the user's credits and adjustments since since, and the
// credits left: where the user's tokens went.
func (e *env) ledger(ctx context.Context, user string, since time.Duration) error {
	now := time.Now().UTC()
	entries, err := e.gate.Ledger(ctx, user, now.Add(-since), now.Add(time.Microsecond))
	if err != nil {
		return err
	}
	v := []ledgerView{}
	for _, en := range entries {
		v = append(v, ledgerView{At: en.At, Kind: string(en.Kind), Tokens: en.Tokens, Key: en.Key, Reason: en.Reason, ExpiresAt: en.ExpiresAt})
	}
	return e.emit(v, func(w io.Writer) {
		if len(v) == 0 {
			fmt.Fprintf(w, "no grants, spends, expiries or adjustments for %s since %s\n", user, stamp(now.Add(-since)))
			return
		}
		fmt.Fprintln(w, "AT\tKIND\tTOKENS\tKEY\tREASON")
		for _, en := range v {
			reason := en.Reason
			if !en.ExpiresAt.IsZero() {
				reason += " (expires " + stamp(en.ExpiresAt) + ")"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", stamp(en.At), en.Kind, count(en.Tokens), en.Key, oneLine(reason))
		}
	})
}

// notificationView is a notification in outbox's JSON.
type notificationView struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	UserID    string    `json:"user_id"`
	State     string    `json:"state"`
	Attempts  int       `json:"attempts"`
	CreatedAt time.Time `json:"created_at"`
	LastError string    `json:"last_error,omitempty"`
}

type outboxView struct {
	Pending          int                `json:"pending"`
	Failed           int                `json:"failed"`
	OldestPendingAge float64            `json:"oldest_pending_age_seconds"`
	Notifications    []notificationView `json:"notifications"`
}

func (e *env) outbox(ctx context.Context, states ...freemium.DeliveryState) error {
	st, err := e.gate.OutboxStats(ctx)
	if err != nil {
		return err
	}
	v := outboxView{Pending: st.Pending, Failed: st.Failed, OldestPendingAge: st.OldestPendingAge.Seconds(), Notifications: []notificationView{}}
	for _, state := range states {
		recs, err := e.gate.Outbox(ctx, state, e.opts.limit)
		if err != nil {
			return err
		}
		for _, r := range recs {
			v.Notifications = append(v.Notifications, notificationView{ID: r.ID, Kind: string(r.Kind), UserID: r.UserID,
				State: string(r.State), Attempts: r.Attempts, CreatedAt: r.CreatedAt, LastError: r.LastError})
		}
	}
	return e.emit(v, func(w io.Writer) {
		fmt.Fprintf(w, "pending %d, failed %d", v.Pending, v.Failed)
		if v.Pending > 0 {
			fmt.Fprintf(w, ", oldest pending %v old", st.OldestPendingAge.Round(time.Second))
		}
		fmt.Fprintln(w)
		if len(v.Notifications) == 0 {
			return
		}
		fmt.Fprintln(w, "ID\tSTATE\tKIND\tUSER\tATTEMPTS\tCREATED\tLAST ERROR")
		for _, n := range v.Notifications {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", n.ID, n.State, n.Kind, n.UserID, n.Attempts, stamp(n.CreatedAt), oneLine(n.LastError))
		}
	})
}

func (e *env) retry(ctx context.Context, id string) error {
	if err := e.gate.RetryNotification(ctx, id); err != nil {
		return err
	}
	return e.emit(map[string]string{"id": id, "state": "pending"}, func(w io.Writer) {
		fmt.Fprintf(w, "%s\tpending again; delivery sends it next\n", id)
	})
}

func (e *env) refresh(ctx context.Context, user string) error {
	if err := e.gate.Refresh(ctx, user); err != nil {
		return err
	}
	return e.usage(ctx, user)
}

// fetchError is why a lookup failed, short.
func fetchError(s string) string {
	if strings.Contains(s, errNoChecker.Error()) {
		return "no STRIPE_SECRET_KEY"
	}
	return s
}

// stamp writes t in UTC to the second, "-" for none.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// count writes n with grouped digits, "unlimited" for Unlimited.
func count(n int64) string {
	if n == freemium.Unlimited {
		return "unlimited"
	}
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// oneLine keeps a table row on one line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}
