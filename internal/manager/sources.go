package manager

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// MaxNameLen bounds a source name.
const MaxNameLen = 200

// Size limits of a source's config and credentials (compact JSON). Both
// travel in every sync request, which must fit in one NATS message.
const (
	MaxConfigSize      = 256 << 10
	MaxCredentialsSize = 64 << 10
)

// sizeDetail reports a field over its size limit.
func sizeDetail(field string, raw json.RawMessage, limit int) []Detail {
	if n := len(compact(raw)); n > limit {
		return []Detail{{Loc: []any{"body", field},
			Msg: fmt.Sprintf("Value should be at most %d bytes of JSON, got %d", limit, n), Type: "too_long"}}
	}
	return nil
}

// CreateSource is the input of a new source.
type CreateSource struct {
	Name        string
	Connector   string
	Config      json.RawMessage
	Credentials json.RawMessage
	// Schedule is nil for manual syncs only.
	Schedule *ScheduleInput
}

// ScheduleInput sets a source's schedule: Every or Cron (or neither), Mode,
// and Paused (nil keeps the current value; false for a new source).
type ScheduleInput struct {
	Every  string          `json:"every"`
	Cron   string          `json:"cron"`
	Mode   events.SyncMode `json:"mode"`
	Paused *bool           `json:"paused"`
}

// apply sets in onto s.
func (in *ScheduleInput) apply(s *state.Schedule) {
	paused := s.Paused
	if in.Paused != nil {
		paused = *in.Paused
	}
	*s = state.Schedule{Every: in.Every, Cron: in.Cron, Mode: in.Mode, Paused: paused}
}

// SourcePatch changes a source; nil fields stay as they are.
type SourcePatch struct {
	Name   *string
	Config json.RawMessage
	// Credentials replaces the credentials; the JSON null removes them.
	Credentials json.RawMessage
	// Schedule replaces interval, cron and mode (and paused, when given).
	Schedule *ScheduleInput
	// ClearSchedule removes interval, cron and mode: manual syncs only.
	ClearSchedule bool
}

// Connector returns the registered manifest of a connector type.
func (m *Manager) Connector(ctx context.Context, name string) (*connector.Manifest, error) {
	if !events.ValidToken(name) {
		return nil, &NotFoundError{Kind: "connector", ID: name}
	}
	info, _, err := m.store.Connectors.Get(ctx, name)
	if errors.Is(err, state.ErrNotFound) {
		return nil, &NotFoundError{Kind: "connector", ID: name}
	}
	if err != nil {
		return nil, unavailable("read connector", err)
	}
	var man connector.Manifest
	if err := json.Unmarshal(info.Manifest, &man); err != nil {
		return nil, fmt.Errorf("connector %s: decode manifest: %w", name, err)
	}
	return &man, nil
}

// validateConfig checks config against the connector's schema.
func (m *Manager) validateConfig(man *connector.Manifest, config json.RawMessage) []Detail {
	if !isObject(config) {
		return []Detail{{Loc: []any{"body", "config"}, Msg: "Input should be a valid object", Type: "dict_type"}}
	}
	if d := sizeDetail("config", config, MaxConfigSize); d != nil {
		return d
	}
	if len(man.ConfigSchema) == 0 {
		return nil
	}
	sch, err := m.schemas.compile(man.Name, man.ConfigSchema)
	if err != nil {
		// The connector shipped a broken schema: the operator cannot fix
		// that from here, but the answer must still be a clear one.
		return []Detail{{Loc: []any{"body", "connector"}, Msg: err.Error(), Type: "connector_schema_invalid"}}
	}
	return validateJSON(sch, config, "body", "config")
}

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{' && json.Valid(raw)
}

func validateName(name string) *Detail {
	switch n := strings.TrimSpace(name); {
	case n == "":
		return &Detail{Loc: []any{"body", "name"}, Msg: "Field required", Type: "missing"}
	case utf8.RuneCountInString(name) > MaxNameLen:
		return &Detail{Loc: []any{"body", "name"}, Msg: fmt.Sprintf("String should have at most %d characters", MaxNameLen), Type: "string_too_long"}
	}
	return nil
}

// CreateSource validates and stores a new source.
func (m *Manager) CreateSource(ctx context.Context, in CreateSource) (*state.Source, error) {
	var details []Detail
	if d := validateName(in.Name); d != nil {
		details = append(details, *d)
	}
	if len(in.Config) == 0 || bytes.Equal(bytes.TrimSpace(in.Config), []byte("null")) {
		in.Config = json.RawMessage("{}")
	}
	if in.Connector == "" {
		details = append(details, Detail{Loc: []any{"body", "connector"}, Msg: "Field required", Type: "missing"})
	} else {
		man, err := m.Connector(ctx, in.Connector)
		var nf *NotFoundError
		switch {
		case errors.As(err, &nf):
			details = append(details, Detail{Loc: []any{"body", "connector"},
				Msg: fmt.Sprintf("Unknown connector %q: no worker has registered it", in.Connector), Type: "unknown_connector"})
		case err != nil:
			return nil, err
		default:
			details = append(details, m.validateConfig(man, in.Config)...)
			if in.Schedule != nil {
				_, d := parseSchedule(scheduleOf(in.Schedule), man)
				details = append(details, d...)
			}
		}
	}
	hasCreds := len(in.Credentials) > 0 && !bytes.Equal(bytes.TrimSpace(in.Credentials), []byte("null"))
	if hasCreds && !isObject(in.Credentials) {
		details = append(details, Detail{Loc: []any{"body", "credentials"}, Msg: "Input should be a valid object", Type: "dict_type"})
	} else if hasCreds {
		details = append(details, sizeDetail("credentials", in.Credentials, MaxCredentialsSize)...)
	}
	if len(details) > 0 {
		return nil, &ValidationError{Details: details}
	}
	now := time.Now().UTC()
	src := &state.Source{
		ID: ulid.Make().String(), Name: strings.TrimSpace(in.Name), Connector: in.Connector,
		Config: compact(in.Config), HasCredentials: hasCreds, CreatedAt: now, UpdatedAt: now,
	}
	if in.Schedule != nil {
		in.Schedule.apply(&src.Schedule)
		src.NextRunAt = regularNext(src.Schedule, m.clock.Now().UTC())
	}
	// Credentials first: a source never points at credentials that are not there.
	if hasCreds {
		if _, err := m.store.Credentials.Put(ctx, src.ID, m.seal(src.ID, in.Credentials)); err != nil {
			return nil, unavailable("store credentials", err)
		}
	}
	rev, err := m.store.Sources.Create(ctx, src.ID, src)
	if err != nil {
		return nil, unavailable("store source", err)
	}
	m.srcs.put(src.ID, src, rev)
	return src, nil
}

// scheduleOf is the schedule in describes, for validation.
func scheduleOf(in *ScheduleInput) state.Schedule {
	var s state.Schedule
	in.apply(&s)
	return s
}

func compact(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}

// GetSource returns one source.
func (m *Manager) GetSource(ctx context.Context, id string) (*state.Source, error) {
	if !events.ValidToken(id) {
		return nil, &NotFoundError{Kind: "source", ID: id}
	}
	src, _, err := m.store.Sources.Get(ctx, id)
	if errors.Is(err, state.ErrNotFound) {
		return nil, &NotFoundError{Kind: "source", ID: id}
	}
	if err != nil {
		return nil, unavailable("read source", err)
	}
	return src, nil
}

// ListSources returns every source, oldest first. The records are shared
// with the manager's cache: callers must not change them.
func (m *Manager) ListSources(_ context.Context) ([]*state.Source, error) {
	_, out := m.srcs.page(1, 0)
	return out, nil
}

// SourcePage is one page of sources and how many there are in all.
type SourcePage struct {
	Items []*state.Source
	Total int
}

// ListSourcesPage returns a page of the sources, oldest first, from the
// manager's in-memory copy (sourcecache.go). The records are shared with
// it: callers must not change them.
func (m *Manager) ListSourcesPage(_ context.Context, page, size int) (*SourcePage, error) {
	if page < 1 || size < 1 {
		return nil, invalid("greater_than_equal", "page and size must be at least 1", "query", "page")
	}
	total, items := m.srcs.page(page, size)
	return &SourcePage{Items: items, Total: total}, nil
}

// mutateSource is Sources.Mutate, keeping the sources cache current.
func (m *Manager) mutateSource(ctx context.Context, id string, fn func(*state.Source) error) (*state.Source, uint64, error) {
	out, rev, err := m.store.Sources.Mutate(ctx, id, fn)
	if err == nil {
		m.srcs.put(id, out, rev)
	}
	return out, rev, err
}

// UpdateSource applies a patch with compare-and-set.
func (m *Manager) UpdateSource(ctx context.Context, id string, p SourcePatch) (*state.Source, error) {
	src, err := m.GetSource(ctx, id)
	if err != nil {
		return nil, err
	}
	var details []Detail
	if p.Name != nil {
		if d := validateName(*p.Name); d != nil {
			details = append(details, *d)
		}
	}
	if p.Config != nil || p.Schedule != nil {
		man, err := m.Connector(ctx, src.Connector)
		if err != nil {
			return nil, err
		}
		if p.Config != nil {
			details = append(details, m.validateConfig(man, p.Config)...)
		}
		if p.Schedule != nil {
			_, d := parseSchedule(scheduleOf(p.Schedule), man)
			details = append(details, d...)
		}
	}
	removeCreds := p.Credentials != nil && bytes.Equal(bytes.TrimSpace(p.Credentials), []byte("null"))
	if p.Credentials != nil && !removeCreds && !isObject(p.Credentials) {
		details = append(details, Detail{Loc: []any{"body", "credentials"}, Msg: "Input should be a valid object", Type: "dict_type"})
	} else if p.Credentials != nil && !removeCreds {
		details = append(details, sizeDetail("credentials", p.Credentials, MaxCredentialsSize)...)
	}
	if len(details) > 0 {
		return nil, &ValidationError{Details: details}
	}
	if p.Credentials != nil && !removeCreds {
		if _, err := m.store.Credentials.Put(ctx, id, m.seal(id, p.Credentials)); err != nil {
			return nil, unavailable("store credentials", err)
		}
	}
	out, _, err := m.mutateSource(ctx, id, func(s *state.Source) error {
		if p.Name != nil {
			s.Name = strings.TrimSpace(*p.Name)
		}
		if p.Config != nil {
			s.Config = compact(p.Config)
		}
		if p.Credentials != nil {
			s.HasCredentials = !removeCreds
		}
		if p.Schedule != nil || p.ClearSchedule {
			before := s.Schedule
			if p.ClearSchedule {
				s.Schedule = state.Schedule{Paused: s.Schedule.Paused}
			} else {
				p.Schedule.apply(&s.Schedule)
			}
			if s.Schedule != before {
				s.NextRunAt = regularNext(s.Schedule, m.clock.Now().UTC())
			}
		}
		s.UpdatedAt = time.Now().UTC()
		return nil
	})
	if errors.Is(err, state.ErrNotFound) {
		return nil, &NotFoundError{Kind: "source", ID: id}
	}
	if err != nil {
		return nil, unavailable("update source", err)
	}
	if removeCreds {
		if err := m.store.Credentials.Delete(ctx, id, 0); err != nil {
			return nil, unavailable("delete credentials", err)
		}
	}
	return out, nil
}

// DeleteSource removes a source, its credentials, its checkpoint and its
// finished runs. A source with an active run cannot be deleted: cancel it first.
func (m *Manager) DeleteSource(ctx context.Context, id string) error {
	if _, err := m.GetSource(ctx, id); err != nil {
		return err
	}
	if run, err := m.activeRun(ctx, id); err != nil {
		return err
	} else if run != nil {
		return &ConflictError{Code: CodeRunActive, RunID: run.ID,
			Message: fmt.Sprintf("source %s has an active run %s; cancel it first", id, run.ID)}
	}
	// Hold the source's active-run claim while deleting, so that no run
	// starts meanwhile.
	claim := deletingPrefix + ulid.Make().String()
	if err := m.claimActive(ctx, id, claim); err != nil {
		return err
	}
	defer m.releaseActive(context.WithoutCancel(ctx), id, claim)
	// Its documents first, while the source still exists: indexers are told
	// of every deletion, and a DELETE that stops half way can be repeated.
	released, err := m.dropCatalog(ctx, id)
	if err != nil {
		return unavailable("delete documents", err)
	}
	// Then the source record: once it is gone nothing can start a run. If
	// this stops half way, what remains (credentials, checkpoint, runs) is
	// unreachable through the API (ids are never reused) but stays in KV.
	if err := m.store.Sources.Delete(ctx, id, 0); err != nil {
		return unavailable("delete source", err)
	}
	m.srcs.deleted(id)
	if err := m.store.Credentials.Delete(ctx, id, 0); err != nil {
		return unavailable("delete credentials", err)
	}
	if err := m.store.Checkpoints.Delete(ctx, id, 0); err != nil {
		return unavailable("delete checkpoint", err)
	}
	runs, err := m.store.Runs.List(ctx)
	if err != nil {
		return unavailable("list runs", err)
	}
	for _, e := range runs {
		if e.Value.SourceID == id {
			if err := m.store.Runs.Delete(ctx, e.Key, 0); err != nil {
				return unavailable("delete run", err)
			}
		}
	}
	// Its runs' events: every run has ended and been applied, so nothing
	// reads them any more. They would expire with the stream's age limit
	// anyway, so a failure here is only logged.
	if st, err := m.js.Stream(ctx, events.StreamEvents); err == nil {
		err = st.Purge(ctx, jetstream.WithPurgeSubject(events.SourceEventSubjects(id)))
		if err != nil {
			m.log.Warn("purge the deleted source's events", zap.String("source_id", id), zap.Error(err))
		}
	}
	m.docs.drop(id)
	// Its content, unless documents of other sources share it, goes with
	// the next collection, which starts now.
	m.releaseContent(released)
	return nil
}

// seal encrypts a source's credentials for storage.
func (m *Manager) seal(sourceID string, creds json.RawMessage) *state.Credentials {
	return &state.Credentials{Sealed: m.box.Seal(compact(creds), sourceID), KeyID: m.box.KeyID()}
}

// unseal returns a source's credentials in clear.
func (m *Manager) unseal(sourceID string, c *state.Credentials) (json.RawMessage, error) {
	if c.Sealed == nil {
		return c.Data, nil // a record from before sealing
	}
	if c.KeyID != m.box.KeyID() {
		return nil, &ConflictError{Code: CodeCredentialsUnreadable, Message: fmt.Sprintf(
			"The credentials of source %s are sealed with key %s but this manager has key %s: start it with the right --secret-key-file, or set the credentials again", sourceID, c.KeyID, m.box.KeyID())}
	}
	b, err := m.box.Open(c.Sealed, sourceID)
	if err != nil {
		return nil, &ConflictError{Code: CodeCredentialsUnreadable, Message: fmt.Sprintf(
			"The credentials of source %s cannot be opened (%v): set them again", sourceID, err)}
	}
	return b, nil
}
