// Package migratetest proves that hosts can apply pgstore's migrations with
// their own tool (golang-migrate, goose), and that the store then works
// without Migrate. It is a module of its own so that the tools stay out of
// the library's go.mod.
package migratetest
