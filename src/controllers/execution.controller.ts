import { Controller, Get, Param, Query } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { ExecutionService } from '../services/execution.service';
import { ApiErrors } from './dto/error.dto';
import { ExecutionListDto, ExecutionListQueryDto, ExecutionResponseDto } from './dto/execution.dto';
import { OperationIdDto } from './dto/operation.dto';

@ApiTags('executions')
@ApiSecurity('api-key')
@ApiErrors(401, 503)
@Controller('api/executions')
export class ExecutionController {
  constructor(private readonly executions: ExecutionService) {}

  @Get()
  @ApiOperation({ summary: 'Batch runs, newest first, with their counters' })
  @ApiOkResponse({ type: ExecutionListDto })
  @ApiErrors(400)
  list(@Query() query: ExecutionListQueryDto): Promise<ExecutionListDto> {
    return this.executions.list(query.limit, query.cursor);
  }

  @Get(':id')
  @ApiOperation({ summary: 'One batch run with its steps' })
  @ApiOkResponse({ type: ExecutionResponseDto })
  @ApiErrors(404)
  get(@Param() { id }: OperationIdDto): Promise<ExecutionResponseDto> {
    return this.executions.get(id);
  }
}
