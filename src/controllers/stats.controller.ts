import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiProperty, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { AuthenticatedClient } from '../services/access/client.service';
import { QueueStats, StatsService } from '../services/queue-views/stats.service';
import { Caller } from './auth';
import { ApiErrors } from './dto/error.dto';

class TargetCountDto {
  @ApiProperty() target: string;
  @ApiProperty({ enum: ['PENDING', 'COMPLETED', 'FAILED', 'CANCELLED'] }) status:
    'PENDING' | 'COMPLETED' | 'FAILED' | 'CANCELLED';
  @ApiProperty() count: number;
}

class ThroughputDto {
  @ApiProperty({ format: 'date-time' }) minute: string;
  @ApiProperty() completed: number;
  @ApiProperty() failed: number;
}

class StatsDto implements QueueStats {
  @ApiProperty({ example: { PENDING: 3, COMPLETED: 1200, FAILED: 2, CANCELLED: 0 } }) byStatus: QueueStats['byStatus'];
  @ApiProperty({ type: [TargetCountDto] }) byTarget: TargetCountDto[];
  @ApiProperty({ description: 'age in seconds of the oldest due PENDING operation' }) oldestPendingAgeSeconds: number;
  @ApiProperty({ type: [ThroughputDto], description: 'settled per minute, last 15 minutes' })
  throughput: ThroughputDto[];
  @ApiProperty({ description: 'notifications not yet confirmed by the broker (admin only; 0 for clients)' })
  outboxBacklog: number;
}

@ApiTags('stats')
@ApiSecurity('api-key')
@ApiBearerAuth()
@ApiErrors(401, 429, 503)
@Controller('api/stats')
export class StatsController {
  constructor(private readonly stats: StatsService) {}

  @Get()
  @ApiOperation({ summary: 'Counts by status and target, throughput, queue age (a client sees its own operations)' })
  @ApiOkResponse({ type: StatsDto })
  get(@Caller() client: AuthenticatedClient): Promise<StatsDto> {
    return this.stats.queue(client);
  }
}
