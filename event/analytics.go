package event

import (
	"time"

	"github.com/eventsd/eventsd/routing"
)

// The analytics events. Their fields are snake_case, and a missing value is written as null.
// Timestamp is written in RFC 3339.

// SessionStarted (SESSION_STARTED) announces a visitor session.
type SessionStarted struct {
	Timestamp      time.Time `json:"timestamp"`
	SessionID      string    `json:"session_id"`
	DeviceType     *string   `json:"device_type"`
	Browser        *string   `json:"browser"`
	OS             *string   `json:"os"`
	Country        *string   `json:"country"`
	ReferrerSource *string   `json:"referrer_source"`
	IsBot          *bool     `json:"is_bot"`
}

// SessionEnded (SESSION_ENDED) closes a visitor session.
type SessionEnded struct {
	Timestamp    time.Time `json:"timestamp"`
	SessionID    string    `json:"session_id"`
	DurationMs   *int64    `json:"duration_ms"`
	PageCount    *int64    `json:"page_count"`
	RequestCount *int64    `json:"request_count"`
}

// PageView (PAGE_VIEW) records a page view.
type PageView struct {
	Timestamp time.Time `json:"timestamp"`
	SessionID string    `json:"session_id"`
	UserID    *string   `json:"user_id"`
	PageURL   *string   `json:"page_url"`
	ContentID *string   `json:"content_id"`
	Referrer  *string   `json:"referrer"`
}

// EngagementUpdate (ENGAGEMENT_UPDATE) reports engagement on a page.
type EngagementUpdate struct {
	Timestamp    time.Time `json:"timestamp"`
	SessionID    string    `json:"session_id"`
	PageURL      *string   `json:"page_url"`
	ScrollDepth  *float64  `json:"scroll_depth"`
	TimeOnPageMs *int64    `json:"time_on_page_ms"`
	ClickCount   *int64    `json:"click_count"`
}

// RealTimeStats (REAL_TIME_STATS) reports site-wide live figures.
type RealTimeStats struct {
	Timestamp         time.Time `json:"timestamp"`
	ActiveSessions    *int64    `json:"active_sessions"`
	ActiveUsers       *int64    `json:"active_users"`
	RequestsPerMinute *float64  `json:"requests_per_minute"`
	PageViewsLast5m   *int64    `json:"page_views_last_5m"`
	BotRequestsLast5m *int64    `json:"bot_requests_last_5m"`
}

// AnalyticsHeartbeat (HEARTBEAT) is a keep-alive event of the analytics channel.
type AnalyticsHeartbeat struct {
	Timestamp time.Time `json:"timestamp"`
}

// EventType implements Event.
func (SessionStarted) EventType() string { return "SESSION_STARTED" }

// Channel implements Event.
func (SessionStarted) Channel() routing.Channel { return routing.Analytics }

// MarshalJSON writes the wire form, "type" first.
func (e SessionStarted) MarshalJSON() ([]byte, error) {
	type plain SessionStarted
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (SessionEnded) EventType() string { return "SESSION_ENDED" }

// Channel implements Event.
func (SessionEnded) Channel() routing.Channel { return routing.Analytics }

// MarshalJSON writes the wire form, "type" first.
func (e SessionEnded) MarshalJSON() ([]byte, error) {
	type plain SessionEnded
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (PageView) EventType() string { return "PAGE_VIEW" }

// Channel implements Event.
func (PageView) Channel() routing.Channel { return routing.Analytics }

// MarshalJSON writes the wire form, "type" first.
func (e PageView) MarshalJSON() ([]byte, error) {
	type plain PageView
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (EngagementUpdate) EventType() string { return "ENGAGEMENT_UPDATE" }

// Channel implements Event.
func (EngagementUpdate) Channel() routing.Channel { return routing.Analytics }

// MarshalJSON writes the wire form, "type" first.
func (e EngagementUpdate) MarshalJSON() ([]byte, error) {
	type plain EngagementUpdate
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (RealTimeStats) EventType() string { return "REAL_TIME_STATS" }

// Channel implements Event.
func (RealTimeStats) Channel() routing.Channel { return routing.Analytics }

// MarshalJSON writes the wire form, "type" first.
func (e RealTimeStats) MarshalJSON() ([]byte, error) {
	type plain RealTimeStats
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (AnalyticsHeartbeat) EventType() string { return "HEARTBEAT" }

// Channel implements Event.
func (AnalyticsHeartbeat) Channel() routing.Channel { return routing.Analytics }

// MarshalJSON writes the wire form, "type" first.
func (e AnalyticsHeartbeat) MarshalJSON() ([]byte, error) {
	type plain AnalyticsHeartbeat
	return withType(e.EventType(), plain(e))
}

func init() {
	register(
		SessionStarted{},
		SessionEnded{},
		PageView{},
		EngagementUpdate{},
		RealTimeStats{},
		AnalyticsHeartbeat{},
	)
}
