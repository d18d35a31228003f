-- Geofencing (docs/GEOFENCE.md): per-device state, the outbox of enter and
-- exit events, and the consumed offsets of the positions topic, all written
-- in the one transaction that applies a batch of positions.

-- fence_device is where each device was last seen inside, per collection:
-- inside is a JSON array of {"id": ..., "key": ...} in id order; seq is the
-- number of events emitted so far; last_time the last accepted position's.
-- No foreign key to collection: deleting a collection leaves the states,
-- whose exits the device's next position emits.
CREATE TABLE fence_device (
    collection text NOT NULL,
    device     text NOT NULL,
    seq        bigint NOT NULL,
    last_time  timestamptz NOT NULL,
    inside     jsonb NOT NULL,
    PRIMARY KEY (collection, device)
);

-- fence_outbox holds events until the relay has them in Kafka. xid is the
-- writing transaction: the relay reads rows in (xid, id) order, only below
-- its snapshot's xmin, so that no row can appear behind one relayed.
CREATE TABLE fence_outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY,
    xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    collection text NOT NULL,
    device     text NOT NULL,
    seq        bigint NOT NULL,
    type       text NOT NULL CHECK (type IN ('enter', 'exit')),
    thing_id   bigint NOT NULL,
    thing_key  text NOT NULL,
    lat        double precision NOT NULL,
    lng        double precision NOT NULL,
    at         timestamptz NOT NULL,
    PRIMARY KEY (xid, id)
);

-- fence_offset is the next offset to read of each partition of the
-- positions topic, per consumer group.
CREATE TABLE fence_offset (
    consumer_group text NOT NULL,
    topic          text NOT NULL,
    partition      integer NOT NULL,
    next_offset    bigint NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition)
);

GRANT SELECT ON fence_device, fence_outbox, fence_offset TO search_reader;
GRANT INSERT, UPDATE, DELETE ON fence_device, fence_outbox, fence_offset TO search_writer;
