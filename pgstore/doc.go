// Package pgstore is a freemium.Store in Postgres, through a pgx/v5 pool,
// for Gates in any number of processes that share one database.
//
// Create it with New on the host's pool, apply the migration (Store.Migrate
// at start-up, or Migrations / GooseMigrations with golang-migrate or goose:
// see docs/migrations.md), and give it to freemium.New as Config.Store. Its
// tables live in a schema of their own, "freemium" unless Config.Schema says
// otherwise.
//
// Store.MigrationStatus tells which migrations are applied, and the Store
// is a freemium.OutboxInspector: operators see and retry its outbox
// through the Gate or the cmd/freemium command.
//
// Check is one round trip and Reserve + Commit two in the common case;
// BENCHMARKS.md has the figures, and docs/postgres.md how the statements
// work. Every statement is kept expanded, as Postgres receives it, in
// testdata/sql.
package pgstore
