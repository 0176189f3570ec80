package freemium

import (
	"context"
	"reflect"
	"time"
)

// PostgresStatements returns s's SQL statements by name, for tests.
func PostgresStatements(s *PostgresStore) map[string]string {
	statements := map[string]string{}
	v := reflect.ValueOf(s.sql)
	for i := range v.NumField() {
		statements[v.Type().Field(i).Name] = v.Field(i).String()
	}
	return statements
}

// PostgresPrune runs s's housekeeping as a Reserve at now may.
func PostgresPrune(s *PostgresStore, now time.Time) error {
	_, err := s.pool.Exec(context.Background(), s.sql.prune, now)
	return err
}
