from otel_setup.scrub import FILTERED, EventScrubber, luhn_ok, scrub_mapping, scrub_text, scrub_value

CARD = "4111111111111111"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJlLXZhbHVl"


def test_card_keeps_bin_and_last4_only():
    assert scrub_text(f"card {CARD} declined") == "card 411111******1111 declined"
    assert scrub_text("4111 1111 1111 1111") == "411111******1111"


def test_non_luhn_digit_runs_are_left_alone():
    # order ids and timestamps are not card numbers
    assert not luhn_ok("4111111111111112")
    assert scrub_text("order 4111111111111112") == "order 4111111111111112"


def test_key_value_secrets_in_text_are_replaced():
    body = f'{{"card_number": "{CARD}", "cvv": "123", "password": "correct horse"}}'
    out = scrub_text(body)
    assert "123" not in out and "correct horse" not in out and CARD not in out
    assert out.count(FILTERED) == 3
    assert scrub_text("user=a&cvv=987&pwd=s3cret") == f"user=a&cvv={FILTERED}&pwd={FILTERED}"


def test_raw_bytes_repr_in_frame_locals_is_scrubbed():
    raw = repr(b'{"cvv":"321","email":"jane.doe@example.com"}')
    out = scrub_text(raw)
    assert "321" not in out and "jane.doe" not in out and "j***@example.com" in out


def test_tokens_and_emails():
    assert JWT not in scrub_text(f"token {JWT}")
    assert scrub_text("Authorization: Bearer abcdef123456789") == f"Authorization: {FILTERED}"
    assert scrub_text("mail jane.doe@example.com") == "mail j***@example.com"


def test_mapping_keys_are_denied_at_any_depth():
    data = {"a": {"b": [{"Authorization": "Bearer x", "cardNumber": CARD, "safe": "ok"}]}}
    out = scrub_mapping(data)
    inner = out["a"]["b"][0]
    assert inner["Authorization"] == FILTERED
    assert inner["cardNumber"] == "411111******1111"
    assert inner["safe"] == "ok"


def test_sentry_event_every_part():
    event = {
        "exception": {"values": [{"value": f"charge {CARD} failed", "stacktrace": {"frames": [
            {"vars": {"body": repr(f'cvv=555&card={CARD}'.encode()), "password": "hunter2"}}]}}]},
        "request": {"headers": {"Authorization": f"Bearer {JWT}"}, "data": {"cvv": "555"},
                    "cookies": {"session": "abc"}},
        "user": {"id": "u1", "email": "jane@example.com", "ip_address": "1.2.3.4"},
        "breadcrumbs": {"values": [{"message": f"paying with {CARD}", "data": {"token": "t"}}]},
        "extra": {"note": "call jane@example.com"},
    }
    text = repr(EventScrubber().scrub_event(event))
    for secret in (CARD, "555", "hunter2", JWT, "jane@example.com", "1.2.3.4"):
        assert secret not in text, secret
    assert event["user"] == {"id": "u1"}


def test_scrubbing_twice_changes_nothing_more():
    # helpers scrub their context and before_send scrubs the event again
    data = {"card_number": CARD, "note": f"card {CARD} for jane@example.com", "cvv": "123"}
    once = scrub_mapping(data)
    assert scrub_mapping(once) == once
    assert once["card_number"] == "411111******1111"


def test_url_encoded_emails_and_cards_as_query_strings_and_access_logs_carry_them():
    # Found by tests/reliability/test_pii_everywhere.py: uvicorn's access log line and the
    # server span's http.url hold the raw query string.
    line = '"GET /v1/products?mail=jane.doe%40example.com&pan=4111+1111+1111+1111&q=41111111%2011111111 HTTP/1.1"'
    out = scrub_text(line)
    assert "jane.doe" not in out and "j***@example.com" in out
    assert out.count("411111******1111") == 2 and "1111+1111" not in out


def test_password_hashes_quoted_by_a_database_error_are_replaced():
    # A failed INSERT INTO users quotes its parameters, the argon2 hash among them.
    argon = "$argon2id$v=19$m=19456,t=2,p=1$FhkI3n1rk44RQxDUXsFCQA$9/x/FlOy3HsW80D3pni1n6KFI+NBsgiNkMw2r5FHBnE"
    bcrypt = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"
    out = scrub_text(f"[parameters: ('u1', 'jane@example.com', '{argon}')] and {bcrypt}")
    assert "argon2id" not in out and "$2b$" not in out and out.count(FILTERED) == 2
    assert scrub_mapping({"password_hash": "opaque", "hashed_password": "opaque"}) == {
        "password_hash": FILTERED, "hashed_password": FILTERED}
    assert scrub_text("SELECT id FROM users WHERE id = $1::VARCHAR") == "SELECT id FROM users WHERE id = $1::VARCHAR"


def test_query_texts_are_scrubbed_every_time_and_other_attributes_too() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from otel_setup.spans import scrub_span

    tracer = TracerProvider().get_tracer("test")
    statement = f"SELECT * FROM orders WHERE card = '{CARD}' AND email = 'jane.doe@example.com'"
    for user in ("a", "b"):  # the second span's query text comes from the remembered template
        with tracer.start_as_current_span("SELECT") as span:
            span.set_attribute("db.query.text", statement)
            span.set_attribute("enduser.id", f"{user}.doe@example.com")
        clean = scrub_span(span)  # type: ignore[arg-type]
        assert clean.attributes is not None
        assert clean.attributes["db.query.text"] == (
            "SELECT * FROM orders WHERE card = '411111******1111' AND email = 'j***@example.com'")
        assert clean.attributes["enduser.id"] == f"{user}***@example.com"


def test_header_pairs_in_frame_locals_are_scrubbed_raw_and_as_reprs() -> None:
    # Found by tests/reliability/test_pii_everywhere.py once uvicorn served with httptools: a
    # Sentry event's frame locals held the ASGI scope, whose headers are (name, value) pairs.
    headers = [(b"x-password", b"Sesame open!"), (b"x-cvv", b"7391"), (b"accept", b"*/*")]
    assert scrub_value({"scope": {"headers": headers}})["scope"]["headers"] == [
        (b"x-password", FILTERED), (b"x-cvv", FILTERED), ("accept", "*/*")]
    as_serialized = [["b'x-password'", "b'Sesame open!'"], ["b'accept'", "b'*/*'"]]
    assert scrub_value(as_serialized) == [["b'x-password'", FILTERED], ["b'accept'", "b'*/*'"]]
