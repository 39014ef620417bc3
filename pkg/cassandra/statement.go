package cassandra

import (
	"context"
	"fmt"
	"reflect"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"
	"github.com/scylladb/gocqlx/v2/qb"
)

// statement is a CQL statement built once, from the metadata in tables.go
// with table and qb, and the names of its parameters in order.
type statement struct {
	cql   string
	names []string
}

// newStatement takes what a table or qb builder returns:
// newStatement(qb.Select(...).ToCql()) or newStatement(votesTable.Get(...)).
func newStatement(cql string, names []string) statement {
	return statement{cql: cql, names: names}
}

// query is the statement on s under ctx, ready to bind.
func (st statement) query(ctx context.Context, s gocqlx.Session) *gocqlx.Queryx {
	return s.Query(st.cql, st.names).WithContext(ctx)
}

// batch is a gocql batch of statements. gocqlx v2 has no batch of its own
// (qb.Batch renders one CQL string, whose conditional result gocql cannot
// read as a batch), so add binds each statement's parameters by name from a
// row struct's db tags, the way gocqlx's BindStruct does.
type batch struct {
	*gocql.Batch
	err error
}

func newBatch(ctx context.Context, s gocqlx.Session, typ gocql.BatchType) *batch {
	return &batch{Batch: s.Session.NewBatch(typ).WithContext(ctx)}
}

// add appends st with its parameters taken from row, a row struct or a
// qb.M for parameters that are not columns. The first binding
// error is kept and returned by exec or execCAS.
func (b *batch) add(st statement, row any) {
	if b.err != nil {
		return
	}
	args := make([]any, len(st.names))
	if m, ok := row.(qb.M); ok {
		for i, name := range st.names {
			v, ok := m[name]
			if !ok {
				b.err = fmt.Errorf("bind %q: not in %v", name, m)
				return
			}
			args[i] = v
		}
		b.Query(st.cql, args...)
		return
	}
	v := reflect.Indirect(reflect.ValueOf(row))
	b.err = gocqlx.DefaultMapper.TraversalsByNameFunc(v.Type(), st.names, func(i int, t []int) error {
		if len(t) == 0 {
			return fmt.Errorf("bind %q: no such field in %T", st.names[i], row)
		}
		args[i] = v.FieldByIndex(t).Interface()
		return nil
	})
	if b.err == nil {
		b.Query(st.cql, args...)
	}
}

func (b *batch) exec(s gocqlx.Session) error {
	if b.err != nil {
		return b.err
	}
	return s.Session.ExecuteBatch(b.Batch)
}

// execCAS runs a conditional batch and reports whether it applied.
func (b *batch) execCAS(s gocqlx.Session) (bool, error) {
	if b.err != nil {
		return false, b.err
	}
	applied, iter, err := s.Session.ExecuteBatchCAS(b.Batch)
	if iter != nil {
		_ = iter.Close()
	}
	return applied, err
}
