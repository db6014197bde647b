-- The x-request-id a client sent, kept apart from Perch's own request id
-- (which a client can no longer choose). Capped: it is the client's text.
ALTER TABLE audit_events
    ADD COLUMN client_request_id text
        CHECK (char_length(client_request_id) <= 128);
