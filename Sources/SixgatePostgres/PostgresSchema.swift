// The shared database's schema and its migrations. Every gateway of a group runs them at start,
// one at a time (an advisory lock), each in one transaction; a database whose schema is newer than
// the program is refused before anything is read or written.

/// Migrations, in order; a database records the versions it has applied in `sixgate_schema`.
public enum PostgresSchema {
    /// The newest version this program knows.
    public static var current: Int { migrations.count }

    /// The advisory lock key the migrations take (any gateway of the group, any process).
    static let lockKey = "7403519"

    static let migrations: [String] = [
        // 1: pools, leases and clients. The database keeps itself consistent whoever writes (a
        // gateway, gatewayctl, an operator with psql): triggers refuse a lease outside its pool,
        // stamp every row with its writing transaction (the change feed), log deletions, and
        // notify the gateways.
        """
        CREATE TABLE pools (
            name text PRIMARY KEY,
            prefix cidr NOT NULL,
            slot_length integer NOT NULL,
            kind text NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        COMMENT ON TABLE pools IS 'Sixgate: the pools as the gateways are configured (written at start and by a renumbering); a lease must lie inside its pool';
        CREATE TABLE leases (
            pool text NOT NULL,
            prefix cidr NOT NULL,
            client text NOT NULL,
            static boolean NOT NULL DEFAULT false,
            allocated_at double precision NOT NULL,
            released_at double precision,
            position numeric(39, 0),
            xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
            PRIMARY KEY (pool, prefix)
        );
        COMMENT ON TABLE leases IS 'Sixgate: one row per slot of a pool and the client that holds or last held it';
        COMMENT ON COLUMN leases.xid IS 'the writing transaction (set by a trigger): gateways read what changed since they last looked';
        CREATE UNIQUE INDEX leases_active_client ON leases (pool, client) WHERE released_at IS NULL;
        CREATE INDEX leases_by_client ON leases (client);
        CREATE INDEX leases_by_xid ON leases (xid);
        CREATE TABLE lease_removals (
            pool text NOT NULL,
            prefix cidr NOT NULL,
            xid xid8 NOT NULL DEFAULT pg_current_xact_id()
        );
        CREATE INDEX lease_removals_by_xid ON lease_removals (xid);
        CREATE FUNCTION sixgate_lease_written() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE p pools;
        BEGIN
            SELECT * INTO p FROM pools WHERE name = NEW.pool;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'lease % of client %: no pool named % (pools: %)', NEW.prefix, NEW.client, NEW.pool,
                    (SELECT coalesce(string_agg(name, ', ' ORDER BY name), 'none') FROM pools) USING ERRCODE = 'check_violation';
            END IF;
            IF NOT (NEW.prefix <<= p.prefix) OR masklen(NEW.prefix) <> p.slot_length THEN
                RAISE EXCEPTION 'lease % of client %: not a slot of pool % (%, slots of /%)', NEW.prefix, NEW.client, p.name, p.prefix, p.slot_length
                    USING ERRCODE = 'check_violation';
            END IF;
            NEW.xid := pg_current_xact_id();
            RETURN NEW;
        END $$;
        CREATE TRIGGER leases_written BEFORE INSERT OR UPDATE ON leases FOR EACH ROW EXECUTE FUNCTION sixgate_lease_written();
        CREATE FUNCTION sixgate_lease_removed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- A deleted row, or a row whose key an UPDATE changed (moved by hand): its old key is gone.
            IF TG_OP = 'DELETE' OR (OLD.pool, OLD.prefix) IS DISTINCT FROM (NEW.pool, NEW.prefix) THEN
                INSERT INTO lease_removals (pool, prefix) VALUES (OLD.pool, OLD.prefix);
            END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER leases_removed AFTER DELETE OR UPDATE ON leases FOR EACH ROW EXECUTE FUNCTION sixgate_lease_removed();
        CREATE FUNCTION sixgate_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify(TG_ARGV[0], '');
            RETURN NULL;
        END $$;
        CREATE TRIGGER leases_notify AFTER INSERT OR UPDATE OR DELETE ON leases FOR EACH STATEMENT EXECUTE FUNCTION sixgate_notify('sixgate_leases');
        CREATE TABLE clients (
            name text PRIMARY KEY,
            public_key text NOT NULL UNIQUE,
            open text[] NOT NULL DEFAULT '{}',
            isolated boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now(),
            xid xid8 NOT NULL DEFAULT pg_current_xact_id()
        );
        COMMENT ON TABLE clients IS 'Sixgate: enrolled clients (gatewayctl clients add/remove)';
        CREATE INDEX clients_by_xid ON clients (xid);
        CREATE TABLE client_removals (
            name text NOT NULL,
            xid xid8 NOT NULL DEFAULT pg_current_xact_id()
        );
        CREATE INDEX client_removals_by_xid ON client_removals (xid);
        CREATE FUNCTION sixgate_client_written() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.xid := pg_current_xact_id();
            RETURN NEW;
        END $$;
        CREATE TRIGGER clients_written BEFORE INSERT OR UPDATE ON clients FOR EACH ROW EXECUTE FUNCTION sixgate_client_written();
        CREATE FUNCTION sixgate_client_removed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' OR OLD.name IS DISTINCT FROM NEW.name THEN
                INSERT INTO client_removals (name) VALUES (OLD.name);
            END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER clients_removed AFTER DELETE OR UPDATE ON clients FOR EACH ROW EXECUTE FUNCTION sixgate_client_removed();
        CREATE TRIGGER clients_notify AFTER INSERT OR UPDATE OR DELETE ON clients FOR EACH STATEMENT EXECUTE FUNCTION sixgate_notify('sixgate_clients');
        CREATE TABLE gateway_sessions (
            client text NOT NULL,
            gateway text NOT NULL,
            last_handshake timestamptz NOT NULL,
            endpoint text,
            PRIMARY KEY (client, gateway)
        );
        CREATE INDEX gateway_sessions_by_endpoint ON gateway_sessions (endpoint);
        COMMENT ON TABLE gateway_sessions IS 'Sixgate: which gateway of the group last had a handshake with which client (gatewayctl status)';
        """,
    ]

    /// Brings the database to `current` (creating the schema on an empty database); returns the
    /// versions applied now. A database at a newer version is refused, unchanged.
    @discardableResult
    public static func migrate(_ db: PostgresConnection, program: String = "sixgate") throws(PostgresError) -> [Int] {
        try db.transaction(operation: "migrate the schema") { (t) throws(PostgresError) -> [Int] in
            try t.query("SELECT pg_advisory_xact_lock(\(lockKey))")
            try t.query("""
                CREATE TABLE IF NOT EXISTS sixgate_schema (
                    version integer PRIMARY KEY,
                    applied_at timestamptz NOT NULL DEFAULT now(),
                    program text NOT NULL
                )
                """)
            let found = Int(try t.query("SELECT coalesce(max(version), 0) FROM sixgate_schema")[0, 0] ?? "0") ?? 0
            guard found <= current else {
                throw PostgresError(database: db.location, operation: "open", message: "the schema is at version \(found), newer than this program knows (\(current)): upgrade Sixgate on this gateway (every gateway of a group runs the same release), or point it at another database; nothing was changed")
            }
            var applied: [Int] = []
            for version in (found + 1)...max(found + 1, current) where version <= current {
                try t.script(migrations[version - 1])
                try t.query("INSERT INTO sixgate_schema (version, program) VALUES ($1, $2)", [String(version), program])
                applied.append(version)
            }
            return applied
        }
    }

    /// The database's schema version (0 before the first migration), without changing anything.
    public static func version(_ db: PostgresConnection) throws(PostgresError) -> Int {
        let exists = try db.query("SELECT to_regclass('sixgate_schema') IS NOT NULL", operation: "read the schema version")[0, 0] == "t"
        guard exists else { return 0 }
        return Int(try db.query("SELECT coalesce(max(version), 0) FROM sixgate_schema", operation: "read the schema version")[0, 0] ?? "0") ?? 0
    }
}
