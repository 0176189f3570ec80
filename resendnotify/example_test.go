package resendnotify_test

import (
	"context"
	"log"
	"os"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/resendnotify"
)

// Upgrade prompts and usage warnings by email, delivered from the Store's
// outbox while the Gate runs.
func Example() {
	notifier, err := resendnotify.New(resendnotify.Config{
		APIKey: os.Getenv("RESEND_API_KEY"),
		From:   "Acme <billing@acme.example>",
		Recipient: func(ctx context.Context, userID string) (email, name string, err error) {
			return userID + "@example.com", "", nil // look the user up in your own tables
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	gate, err := freemium.New(freemium.Config{
		Store:      freemium.NewMemoryStore(),
		Free:       freemium.Plan{FirstReportFree: true},
		Notifier:   notifier,
		UpgradeURL: "https://acme.example/pricing",
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if err := gate.Start(ctx); err != nil { // delivers in the background
		log.Fatal(err)
	}
	defer gate.Stop(ctx)
}
