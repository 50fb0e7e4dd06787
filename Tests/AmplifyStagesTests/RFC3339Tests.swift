import AmplifyEngine
import AmplifyStages
import Testing

/// Tracker timestamps read as instants. Expected values are written in the one form the
/// journal's own parser (`Timestamp.parse`) reads, so the two parsers check each other.
@Suite("RFC 3339 timestamps")
struct RFC3339Tests {
    func ms(_ text: String) -> Int64? { BeadsReadiness.RFC3339.milliseconds(text) }

    @Test("offsets, fractions, lower case, a space for T, a date alone, no offset", arguments: [
        ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000Z"),
        ("2026-12-01T09:00:00+02:00", "2026-12-01T07:00:00.000Z"),
        ("2026-12-01T00:00:00-05:30", "2026-12-01T05:30:00.000Z"),
        ("2026-12-31T23:30:00-01:00", "2027-01-01T00:30:00.000Z"),
        ("2026-01-01T00:15:00+00:30", "2025-12-31T23:45:00.000Z"),
        ("2026-11-24T18:05:12.123456789-07:00", "2026-11-25T01:05:12.123Z"),   // Go's RFC3339Nano
        ("2026-11-24T18:05:12.5Z", "2026-11-24T18:05:12.500Z"),
        ("2026-11-24T18:05:12.04Z", "2026-11-24T18:05:12.040Z"),
        ("2026-11-24T18:05:12.9999Z", "2026-11-24T18:05:12.999Z"),               // truncated, never rounded up
        ("2026-11-24t18:05:12z", "2026-11-24T18:05:12.000Z"),
        ("2026-11-24 18:05:12+00:00", "2026-11-24T18:05:12.000Z"),
        ("2026-11-24T18:05:12", "2026-11-24T18:05:12.000Z"),                     // no offset: UTC
        ("2026-12-01", "2026-12-01T00:00:00.000Z"),                             // a date alone: its midnight, UTC
        ("2024-02-29T12:00:00Z", "2024-02-29T12:00:00.000Z"),
        ("2000-02-29T00:00:00Z", "2000-02-29T00:00:00.000Z"),
        ("1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999Z"),
        ("2016-12-31T23:59:60Z", "2017-01-01T00:00:00.000Z"),                   // a leap second
    ])
    func valid(text: String, utc: String) throws {
        let expected = try #require(Timestamp.parse(utc))
        #expect(ms(text) == expected, "\(text)")
    }

    @Test("not a timestamp: nil", arguments: [
        "", "tomorrow", "+1d", "2026", "2026-12", "2026-1-01", "2026-13-01", "2026-00-10", "2026-02-29", "1900-02-29",
        "2026-04-31", "2026-12-00", "2026-12-01T", "2026-12-01T09:00", "2026-12-01T24:00:00Z", "2026-12-01T09:60:00Z",
        "2026-12-01T09:00:61Z", "2026-12-01T09:00:00.Z", "2026-12-01T09:00:00+2:00", "2026-12-01T09:00:00+0200",
        "2026-12-01T09:00:00+24:00", "2026-12-01T09:00:00+02:60", "2026-12-01T09:00:00ZZ", " 2026-12-01T09:00:00Z",
        "2026-12-01T09:00:00Z ", "2026-12-01x09:00:00Z", "２026-12-01", "2026-12-01T09:00:00 UTC",
    ])
    func invalid(text: String) {
        #expect(ms(text) == nil, "\(text)")
    }

    @Test("what the runner writes reads back to the same instant, over leap days and centuries")
    func roundTrip() {
        var t: Int64 = 0
        while t < 4_102_444_800_000 {      // 2100-01-01
            #expect(ms(Timestamp.iso8601(milliseconds: t)) == t, "\(Timestamp.iso8601(milliseconds: t))")
            t += 86_399_999 * 7 + 12_345   // a week, less a little: every weekday, hour and leap day over time
        }
    }
}
