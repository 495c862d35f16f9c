-- Issue 20: VPN connections carry IP packets (agent/tunnel).
--
-- masquerade: the exit source-NATs packets of this policy's prefixes leaving
-- toward the remote network (the remote network then needs no route back to
-- the client prefixes). Off by default: the exit only forwards.
ALTER TABLE vpn_connection_route_policies ADD COLUMN masquerade boolean NOT NULL DEFAULT false;

-- tunnel: the agent's latest data-path counters for the assignment
-- (interface, packets/bytes each way, drops by reason, current exit); agent
-- telemetry, kept with the latest status only.
ALTER TABLE vpn_assignment_status_latest ADD COLUMN tunnel jsonb;
