-- agent-monitor schema v3: the job system's own id of each instance's job (Slurm's job id;
-- NULL for local processes, which are known by their job lock) and the node it runs on,
-- shown by viewerStatus and `agent-monitor status` so an operator can find the job in
-- squeue/scontrol and the VM on its hypervisor.
ALTER TABLE instances ADD COLUMN job_id TEXT;
ALTER TABLE instances ADD COLUMN node TEXT;
