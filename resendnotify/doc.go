// Package resendnotify is a freemium.Notifier that sends the Gate's
// notifications (usage warnings, upgrade prompts, limits reached) as emails
// through Resend, with resend-go. The default emails are in templates/;
// Config replaces any of them with Go templates executed on an EmailData.
package resendnotify
