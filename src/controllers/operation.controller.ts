import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { AuthenticatedClient } from '../services/access/client.service';
import { OperationService } from '../services/ingest/operation.service';
import { Caller } from './auth';
import { ApiErrors } from './dto/error.dto';
import {
  OperationCreateDto,
  OperationCreatedDto,
  OperationIdDto,
  OperationListDto,
  OperationListQueryDto,
  OperationResponseDto,
  OperationsCreateDto,
  OperationsCreatedDto,
} from './dto/operation.dto';

@ApiTags('operations')
@ApiSecurity('api-key')
@ApiBearerAuth()
@ApiErrors(401, 429, 503)
@Controller('api/operations')
export class OperationController {
  constructor(private readonly operations: OperationService) {}

  @Post()
  @ApiOperation({ summary: 'Create one operation (as the RPC pattern createOperation)' })
  @ApiCreatedResponse({ type: OperationCreatedDto })
  @ApiErrors(400, 403, 413, 429)
  create(@Caller() client: AuthenticatedClient, @Body() dto: OperationCreateDto): Promise<OperationCreatedDto> {
    return this.operations.create(client, dto);
  }

  @Post('bulk')
  @ApiOperation({ summary: 'Create 1..1000 operations, all or none (as createOperations)' })
  @ApiCreatedResponse({ type: OperationsCreatedDto })
  @ApiErrors(400, 403, 413, 429)
  async createMany(
    @Caller() client: AuthenticatedClient,
    @Body() dto: OperationsCreateDto,
  ): Promise<OperationsCreatedDto> {
    return { operations: await this.operations.createMany(client, dto.operations) };
  }

  @Get()
  @ApiOperation({ summary: 'List operations, newest first, keyset-paginated' })
  @ApiOkResponse({ type: OperationListDto })
  @ApiErrors(400)
  list(@Caller() client: AuthenticatedClient, @Query() query: OperationListQueryDto): Promise<OperationListDto> {
    return this.operations.list(client, query);
  }

  @Get(':id')
  @ApiOperation({ summary: 'One operation' })
  @ApiOkResponse({ type: OperationResponseDto })
  @ApiErrors(403, 404)
  get(@Caller() client: AuthenticatedClient, @Param() { id }: OperationIdDto): Promise<OperationResponseDto> {
    return this.operations.get(client, id);
  }

  @Post(':id/cancel')
  @HttpCode(200)
  @ApiOperation({ summary: 'Cancel a PENDING operation' })
  @ApiOkResponse({ type: OperationResponseDto })
  @ApiErrors(403, 404, 409)
  cancel(@Caller() client: AuthenticatedClient, @Param() { id }: OperationIdDto): Promise<OperationResponseDto> {
    return this.operations.cancel(client, id);
  }

  @Post(':id/retry')
  @HttpCode(200)
  @ApiOperation({ summary: 'Make a FAILED operation PENDING again (same id)' })
  @ApiOkResponse({ type: OperationResponseDto })
  @ApiErrors(403, 404, 409)
  retry(@Caller() client: AuthenticatedClient, @Param() { id }: OperationIdDto): Promise<OperationResponseDto> {
    return this.operations.retry(client, id);
  }
}
