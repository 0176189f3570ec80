// Package stripesub connects freemium to Stripe: Checker is the
// freemium.SubscriptionChecker that reads a user's subscriptions from
// Stripe (and starts and reads back Checkout sessions for Gate.CheckoutURL
// and Gate.CompleteCheckout), and WebhookHandler keeps the Gate's mirror of
// them current from Stripe's events.
//
// It uses stripe-go v76, whose API version is 2023-10-16: create the
// webhook endpoint with that version.
package stripesub
