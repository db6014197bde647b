-- What each API key may do. Existing keys keep every scope, as before
-- scopes existed. The list is exactly perch_tenants::scopes::Scope; a key
-- always has at least one.
ALTER TABLE api_keys
    ADD COLUMN scopes text[] NOT NULL DEFAULT ARRAY[
        'apps:read', 'apps:write', 'accounts:read', 'accounts:write',
        'accounts:credentials', 'accounts:proxy', 'audit:read',
        'webhooks:read', 'webhooks:write', 'oidc:write'
    ]::text[]
    CHECK (
        cardinality(scopes) >= 1
        AND scopes <@ ARRAY[
            'apps:read', 'apps:write', 'accounts:read', 'accounts:write',
            'accounts:credentials', 'accounts:proxy', 'audit:read',
            'webhooks:read', 'webhooks:write', 'oidc:write'
        ]::text[]
    );
-- New keys always state their scopes.
ALTER TABLE api_keys ALTER COLUMN scopes DROP DEFAULT;
