DROP TABLE fence_offset;
DROP TABLE fence_outbox;
DROP TABLE fence_device;
