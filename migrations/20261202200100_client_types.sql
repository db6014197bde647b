-- Public apps (native, single-page) cannot keep a client secret: their
-- logins must carry a PKCE challenge and exchange with the verifier.
ALTER TABLE apps
    ADD COLUMN client_type text NOT NULL DEFAULT 'confidential'
    CHECK (client_type IN ('confidential', 'public'));

-- Wrong exchanges count against the code; the third burns it.
ALTER TABLE login_codes
    ADD COLUMN failed_attempts integer NOT NULL DEFAULT 0
    CHECK (failed_attempts BETWEEN 0 AND 3);
