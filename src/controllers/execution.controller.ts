import { Controller, Get, Param, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { AuthenticatedClient } from '../services/access/client.service';
import { ExecutionService } from '../services/observability/execution.service';
import { Caller } from './auth';
import { ApiErrors } from './dto/error.dto';
import { ExecutionListDto, ExecutionListQueryDto, ExecutionResponseDto } from './dto/execution.dto';
import { OperationIdDto } from './dto/operation.dto';

@ApiTags('executions')
@ApiSecurity('api-key')
@ApiBearerAuth()
@ApiErrors(401, 429, 503)
@Controller('api/executions')
export class ExecutionController {
  constructor(private readonly executions: ExecutionService) {}

  @Get()
  @ApiOperation({
    summary: 'Batch runs, newest first, with their counters (a client sees those that settled its operations)',
  })
  @ApiOkResponse({ type: ExecutionListDto })
  @ApiErrors(400)
  list(@Caller() client: AuthenticatedClient, @Query() query: ExecutionListQueryDto): Promise<ExecutionListDto> {
    return this.executions.list(client, query.limit, query.cursor);
  }

  @Get(':id')
  @ApiOperation({ summary: 'One batch run with its steps' })
  @ApiOkResponse({ type: ExecutionResponseDto })
  @ApiErrors(404)
  get(@Caller() client: AuthenticatedClient, @Param() { id }: OperationIdDto): Promise<ExecutionResponseDto> {
    return this.executions.get(client, id);
  }
}
