package stripesub

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/freemiumkit/freemium"
)

const (
	// maxWebhookBody caps a webhook request's body; Stripe's events are a
	// few KiB.
	maxWebhookBody = 64 << 10
	// webhookTolerance is how old a signature may be: older deliveries are
	// refused as replays.
	webhookTolerance = 5 * time.Minute
)

// WebhookConfig configures WebhookHandler.
type WebhookConfig struct {
	// Secret is the endpoint's signing secret (whsec_...). Required.
	Secret string
	// MetadataKey is the metadata key that holds the user ID on
	// subscriptions and checkout sessions: Config.MetadataKey of the
	// Checker that made the checkouts. Default "user_id".
	MetadataKey string
}

// WebhookHandler serves Stripe's webhook endpoint, keeping g's
// subscription mirror current, so that checks need not ask Stripe (raise
// freemium.Config.SubscriptionMaxAge once it is wired); g's checker need not
// be a Checker. Create the endpoint with API version 2023-10-16, the
// version stripe-go v76 reads.
//
// It verifies the Stripe-Signature header (5 minutes' tolerance, against
// the real clock) and answers 400 to anything unsigned, tampered, too old
// or of another API version, and 413 to a body over 64 KiB, changing
// nothing. It applies customer.subscription.created, .updated, .deleted,
// .paused and .resumed through Gate.ApplySubscription, naming the user in
// the subscription's metadata (Config.MetadataKey, which CheckoutURL sets);
// checkout.session.completed of sessions CheckoutURL made, which links
// the session's customer to its user; checkout.session.completed (paid)
// and checkout.session.async_payment_succeeded of sessions TopUpURL made,
// which grant the top-up's tokens once per payment (Gate.ApplyTopUp); and
// charge.refunded of such a payment, which takes back what is left of them
// (Gate.RefundTopUp), or, delivered before the grant, makes the grant
// grant nothing. Duplicate and out-of-order deliveries are harmless.
// Other event types, events whose object cannot be read, and events
// about users it cannot find, are answered 200 (and logged to
// g.Logger()). When the Store fails it answers 500, and Stripe
// retries.
//
// It panics when g is nil or cfg.Secret is empty.
func WebhookHandler(g *freemium.Gate, cfg WebhookConfig) http.Handler {
	if g == nil {
		panic("stripesub: WebhookHandler: the Gate is nil")
	}
	if cfg.Secret == "" {
		panic("stripesub: WebhookHandler: WebhookConfig.Secret is empty: set the endpoint's whsec_... secret")
	}
	secret, key := cfg.Secret, cmp.Or(cfg.MetadataKey, "user_id")
	log := g.Logger()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, "Stripe posts events.")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
		if errors.As(err, new(*http.MaxBytesError)) {
			writeError(w, http.StatusRequestEntityTooLarge, "The event is larger than 64 KiB.")
			return
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, "The event could not be read.")
			return
		}
		ev, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), secret,
			webhook.ConstructEventOptions{Tolerance: webhookTolerance})
		if err != nil {
			log.WarnContext(r.Context(), "freemium: stripe webhook refused", "operation", "webhook", "err", err)
			g.Observe(r.Context(), freemium.Event{Kind: freemium.EventWebhook, Type: "unverified", Outcome: "rejected"})
			writeError(w, http.StatusBadRequest, "The event's signature does not verify.")
			return
		}
		applied, err := apply(r.Context(), g, ev, key)
		outcome := "ignored"
		switch {
		case err == nil && applied:
			outcome = "applied"
		case errors.Is(err, errUnreadableEvent):
			// Signed by Stripe, so sending it again will not help.
			log.WarnContext(r.Context(), "freemium: stripe event ignored", "operation", "webhook", "event", ev.ID, "type", ev.Type, "err", err)
		case errors.Is(err, freemium.ErrUnknownTopUp):
			// A price taken out of Config.TopUps while its checkout was
			// open: granting is the host's call now.
			log.WarnContext(r.Context(), "freemium: stripe top-up of a price not in Config.TopUps ignored",
				"operation", "webhook", "event", ev.ID, "type", ev.Type, "err", err)
		case errors.Is(err, freemium.ErrCustomerLinked):
			log.WarnContext(r.Context(), "freemium: stripe event ignored: its customer belongs to another user",
				"operation", "webhook", "event", ev.ID, "type", ev.Type, "err", err)
		case errors.Is(err, freemium.ErrInvalidUserID):
			// Not one of ours yet: checkout.session.completed links it,
			// and the link makes the next check refresh.
			log.InfoContext(r.Context(), "freemium: stripe event of an unknown user ignored", "operation", "webhook", "event", ev.ID, "type", ev.Type)
		case err != nil:
			log.ErrorContext(r.Context(), "freemium: stripe webhook not applied", "operation", "webhook", "event", ev.ID, "type", ev.Type, "err", err)
			g.Observe(r.Context(), freemium.Event{Kind: freemium.EventWebhook, Type: eventType(ev.Type), Outcome: "error"})
			writeError(w, http.StatusInternalServerError, "The event could not be applied; retry.")
			return
		}
		g.Observe(r.Context(), freemium.Event{Kind: freemium.EventWebhook, Type: eventType(ev.Type), Outcome: outcome})
		w.WriteHeader(http.StatusOK)
	})
}

// errUnreadableEvent: a verified event whose object cannot be decoded.
var errUnreadableEvent = errors.New("the event's object cannot be read")

// eventType is the type of an event as metrics name it: the types the
// handler reads, and "other" for the rest, so that an endpoint sent every
// type does not make a series of each.
func eventType(t stripe.EventType) string {
	switch t {
	case "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
		"customer.subscription.paused", "customer.subscription.resumed", "checkout.session.completed",
		"checkout.session.async_payment_succeeded", "charge.refunded":
		return string(t)
	}
	return "other"
}

// apply applies one verified event to g, and reports whether it was one
// the handler acts on.
func apply(ctx context.Context, g *freemium.Gate, ev stripe.Event, key string) (bool, error) {
	if ev.Data == nil {
		ev.Data = &stripe.EventData{}
	}
	switch ev.Type {
	case "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
		"customer.subscription.paused", "customer.subscription.resumed":
		var sub stripe.Subscription
		if err := json.Unmarshal(ev.Data.Raw, &sub); err != nil {
			return false, fmt.Errorf("%w: %w", errUnreadableEvent, err)
		}
		return true, g.ApplySubscription(ctx, fromStripe(&sub), sub.Metadata[key], time.Unix(ev.Created, 0))
	case "checkout.session.completed", "checkout.session.async_payment_succeeded":
		var cs stripe.CheckoutSession
		if err := json.Unmarshal(ev.Data.Raw, &cs); err != nil {
			return false, fmt.Errorf("%w: %w", errUnreadableEvent, err)
		}
		// Only sessions CheckoutURL or TopUpURL made: they name the user
		// twice. A client_reference_id alone can come from anyone's
		// Payment Link.
		c, ok := completed(&cs, key)
		if !ok {
			g.Logger().InfoContext(ctx, "freemium: stripe checkout session not made by CheckoutURL or TopUpURL; ignored", "event", ev.ID)
			return false, nil
		}
		if c.TopUpPrice == "" {
			return true, g.LinkCustomer(ctx, c.UserID, c.CustomerID)
		}
		if !c.Paid {
			// An asynchronous payment (a bank debit): its
			// checkout.session.async_payment_succeeded grants.
			return false, nil
		}
		return true, g.ApplyTopUp(ctx, freemium.TopUpPayment{ID: c.PaymentID, PriceID: c.TopUpPrice, UserID: c.UserID, CustomerID: c.CustomerID})
	case "charge.refunded":
		var ch stripe.Charge
		if err := json.Unmarshal(ev.Data.Raw, &ch); err != nil {
			return false, fmt.Errorf("%w: %w", errUnreadableEvent, err)
		}
		if ch.PaymentIntent == nil || ch.PaymentIntent.ID == "" {
			return false, nil
		}
		p := freemium.TopUpPayment{ID: ch.PaymentIntent.ID, UserID: ch.Metadata[key]}
		if ch.Customer != nil {
			p.CustomerID = ch.Customer.ID
		}
		// A refund of a top-up not granted yet (or of something else)
		// takes the grant's key: a completed event delivered after it
		// grants nothing.
		_, err := g.RefundTopUp(ctx, p)
		return true, err
	}
	return false, nil
}

// writeError answers status with an RFC 9457 problem.
func writeError(w http.ResponseWriter, status int, detail string) {
	body, _ := json.Marshal(map[string]any{
		"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail,
	})
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
