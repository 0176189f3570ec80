package pgstore

import (
	"context"
	"reflect"
	"time"
)

// Statements returns s's SQL statements by name, for tests.
func Statements(s *Store) map[string]string {
	statements := map[string]string{}
	v := reflect.ValueOf(s.sql)
	for i := range v.NumField() {
		statements[v.Type().Field(i).Name] = v.Field(i).String()
	}
	return statements
}

// Prune runs s's housekeeping as a Reserve at now may.
func Prune(s *Store, now time.Time) error {
	_, err := s.pool.Exec(context.Background(), s.sql.prune, now, retention)
	return err
}
