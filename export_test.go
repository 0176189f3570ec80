package freemium

import "reflect"

// PostgresStatements returns s's SQL statements by name, for tests.
func PostgresStatements(s *PostgresStore) map[string]string {
	statements := map[string]string{}
	v := reflect.ValueOf(s.sql)
	for i := range v.NumField() {
		statements[v.Type().Field(i).Name] = v.Field(i).String()
	}
	return statements
}
