package freemium

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
)

const (
	// maxWebhookBody caps a webhook request's body; Stripe's events are a
	// few KiB.
	maxWebhookBody = 64 << 10
	// webhookTolerance is how old a signature may be: older deliveries are
	// refused as replays.
	webhookTolerance = 5 * time.Minute
)

// StripeWebhookHandler serves Stripe's webhook endpoint, keeping the Store's
// subscription mirror current, so that checks need not ask Stripe (raise
// Config.SubscriptionMaxAge once it is wired). secret is the endpoint's
// signing secret (whsec_...); create the endpoint with API version
// 2023-10-16, the version stripe-go v76 reads.
//
// It verifies the Stripe-Signature header (5 minutes' tolerance, against
// the real clock) and answers 400 to anything unsigned, tampered, too old
// or of another API version, and 413 to a body over 64 KiB, changing
// nothing. It applies customer.subscription.created, .updated, .deleted,
// .paused and .resumed, finding the user by the subscription's metadata
// (StripeConfig.MetadataKey, which CheckoutURL sets) or by the customer's
// link, which wins; and checkout.session.completed of sessions CheckoutURL
// made, which links the session's customer to its user. An event older than the mirrored state is
// ignored, so duplicate and out-of-order deliveries are harmless. Other
// event types, events whose object cannot be read, and events about users it
// cannot find, are answered 200 (and logged).
// When the Store fails it answers 500, and Stripe retries.
//
// It panics when secret is empty.
func (g *Gate) StripeWebhookHandler(secret string) http.Handler {
	if secret == "" {
		panic("freemium: StripeWebhookHandler: the signing secret is empty: pass the endpoint's whsec_... secret")
	}
	key := "user_id"
	if s, ok := g.cfg.Subscriptions.(*StripeSubscriptions); ok {
		key = s.metadataKey
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, "Method Not Allowed", "Stripe posts events.")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
		if errors.As(err, new(*http.MaxBytesError)) {
			writeError(w, http.StatusRequestEntityTooLarge, "Content Too Large", "The event is larger than 64 KiB.")
			return
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, "Bad Request", "The event could not be read.")
			return
		}
		ev, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), secret,
			webhook.ConstructEventOptions{Tolerance: webhookTolerance})
		if err != nil {
			g.cfg.Logger.WarnContext(r.Context(), "freemium: stripe webhook refused", "err", err)
			writeError(w, http.StatusBadRequest, "Bad Request", "The event's signature does not verify.")
			return
		}
		err = g.applyStripeEvent(r.Context(), ev, key)
		if errors.Is(err, errUnreadableEvent) {
			// Signed by Stripe, so sending it again will not help.
			g.cfg.Logger.WarnContext(r.Context(), "freemium: stripe event ignored", "event", ev.ID, "type", ev.Type, "err", err)
			err = nil
		}
		if err != nil {
			g.cfg.Logger.ErrorContext(r.Context(), "freemium: stripe webhook not applied", "event", ev.ID, "type", ev.Type, "err", err)
			writeError(w, http.StatusInternalServerError, "Internal Server Error", "The event could not be applied; retry.")
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// errUnreadableEvent: a verified event whose object cannot be decoded.
var errUnreadableEvent = errors.New("the event's object cannot be read")

// applyStripeEvent applies one verified event to the Store.
func (g *Gate) applyStripeEvent(ctx context.Context, ev stripe.Event, key string) error {
	if ev.Data == nil {
		ev.Data = &stripe.EventData{}
	}
	switch ev.Type {
	case "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
		"customer.subscription.paused", "customer.subscription.resumed":
		var sub stripe.Subscription
		if err := json.Unmarshal(ev.Data.Raw, &sub); err != nil {
			return fmt.Errorf("%w: %w", errUnreadableEvent, err)
		}
		return g.applySubscription(ctx, ev, &sub, key)
	case "checkout.session.completed":
		var cs stripe.CheckoutSession
		if err := json.Unmarshal(ev.Data.Raw, &cs); err != nil {
			return fmt.Errorf("%w: %w", errUnreadableEvent, err)
		}
		// Only sessions CheckoutURL made: they name the user twice. A
		// client_reference_id alone can come from anyone's Payment Link.
		user := cs.ClientReferenceID
		if cs.Mode != stripe.CheckoutSessionModeSubscription || cs.Customer == nil || validateUserID(user) != nil || cs.Metadata[key] != user {
			g.cfg.Logger.InfoContext(ctx, "freemium: stripe checkout session not made by CheckoutURL; ignored", "event", ev.ID)
			return nil
		}
		err := g.cfg.Store.LinkCustomer(ctx, user, cs.Customer.ID, g.now())
		if errors.Is(err, ErrCustomerLinked) {
			g.cfg.Logger.WarnContext(ctx, "freemium: stripe checkout customer belongs to another user; not linked",
				"event", ev.ID, "customer", cs.Customer.ID)
			return nil
		}
		return err
	}
	return nil
}

// applySubscription mirrors the subscription an event carries for its user:
// the user its customer is linked to, else the one its metadata names (and
// the customer is linked to that user). When the two disagree, or the
// customer belongs to another user, the event is ignored: metadata can be
// edited, a link cannot be taken over by an event.
func (g *Gate) applySubscription(ctx context.Context, ev stripe.Event, sub *stripe.Subscription, key string) error {
	named, customer, linked := sub.Metadata[key], "", ""
	if sub.Customer != nil {
		customer = sub.Customer.ID
	}
	if customer != "" {
		var err error
		if linked, err = g.cfg.Store.CustomerUser(ctx, customer); err != nil {
			return err
		}
	}
	user := linked
	switch {
	case linked != "" && named != "" && named != linked:
		g.cfg.Logger.WarnContext(ctx, "freemium: stripe subscription names another user than its customer's; ignored",
			"event", ev.ID, "subscription", sub.ID)
		return nil
	case linked == "":
		user = named
	}
	if validateUserID(user) != nil {
		// Not one of ours yet: checkout.session.completed links it, and the
		// link makes the next check refresh.
		g.cfg.Logger.InfoContext(ctx, "freemium: stripe subscription of an unknown user; ignored", "event", ev.ID, "subscription", sub.ID)
		return nil
	}
	now := g.now()
	if customer != "" && linked == "" {
		err := g.cfg.Store.LinkCustomer(ctx, user, customer, now)
		if errors.Is(err, ErrCustomerLinked) { // linked to another user meanwhile
			g.cfg.Logger.WarnContext(ctx, "freemium: stripe customer belongs to another user; ignored", "event", ev.ID)
			return nil
		}
		if err != nil {
			return err
		}
	}
	_, err := g.cfg.Store.PutSubscriptions(ctx, user, g.update([]Subscription{fromStripe(sub)}, time.Unix(ev.Created, 0).UTC(), now), now)
	return err
}
