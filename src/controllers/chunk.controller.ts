import { Controller, Get, Param, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { AuthenticatedClient } from '../services/access/client.service';
import { ChunkService } from '../services/queue-views/chunk.service';
import { Caller } from './auth';
import { ApiErrors } from './dto/error.dto';
import { ChunkListDto, ChunkListQueryDto, ChunkResponseDto } from './dto/chunk.dto';
import { OperationIdDto } from './dto/operation.dto';

@ApiTags('chunks')
@ApiSecurity('api-key')
@ApiBearerAuth()
@ApiErrors(401, 429, 503)
@Controller('api/executions')
export class ChunkController {
  constructor(private readonly chunks: ChunkService) {}

  @Get()
  @ApiOperation({
    summary: 'Batch runs, newest first, with their counters (a client sees those that settled its operations)',
  })
  @ApiOkResponse({ type: ChunkListDto })
  @ApiErrors(400)
  list(@Caller() client: AuthenticatedClient, @Query() query: ChunkListQueryDto): Promise<ChunkListDto> {
    return this.chunks.list(client, query.limit, query.cursor);
  }

  @Get(':id')
  @ApiOperation({ summary: 'One batch run with its steps' })
  @ApiOkResponse({ type: ChunkResponseDto })
  @ApiErrors(404)
  get(@Caller() client: AuthenticatedClient, @Param() { id }: OperationIdDto): Promise<ChunkResponseDto> {
    return this.chunks.get(client, id);
  }
}
