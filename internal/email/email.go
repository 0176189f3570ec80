// Package email holds the default notification emails: for each kind of
// notification, KIND.html (html/template, in the frame of layout.html) and
// KIND.txt (text/template), and its subject line. They are executed with a
// freemium.EmailData, and say that a limit is reached only when .Reached
// is set.
package email

import (
	"embed"
	htmltemplate "html/template"
	texttemplate "text/template"
)

//go:embed *.html *.txt
var files embed.FS

// Subjects are the default subject lines by kind, text/template sources.
var Subjects = map[string]string{
	"usage_warning":  "You've used {{.Percent}}% of your {{.Usage.Plan}} allowance",
	"upgrade_prompt": "{{if .Reached}}You've reached the free plan's limit: upgrade to continue{{else}}You've used {{.Percent}}% of the free plan: upgrade to continue{{end}}",
	"limit_reached":  "{{if .Reached}}You've reached the limit of your {{.Usage.Plan}} plan{{else}}You've used {{.Percent}}% of your {{.Usage.Plan}} plan{{end}}",
}

// HTML returns the default HTML email of kind.
func HTML(kind string) (*htmltemplate.Template, error) {
	return htmltemplate.ParseFS(files, kind+".html", "layout.html")
}

// Text returns the default plain-text email of kind.
func Text(kind string) (*texttemplate.Template, error) {
	return texttemplate.ParseFS(files, kind+".txt")
}
