import { Module } from '@nestjs/common';

/**
 * The home of a team's own jobs: one file each in this folder (expire-holds.job.ts is an example), listed here as
 * providers. Every process of the service then knows them (GET /api/jobs), and workers run their executions.
 */
@Module({ providers: [] })
export class TeamJobsModule {}
