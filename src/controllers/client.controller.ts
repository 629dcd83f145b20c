import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiSecurity,
  ApiTags,
} from '@nestjs/swagger';
import { ClientEntity } from '../entities';
import { ClientService } from '../services/access/client.service';
import { AdminOnly } from './auth';
import { ClientCreateDto, ClientIdDto, ClientKeyDto, ClientResponseDto, ClientUpdateDto } from './dto/client.dto';
import { ApiErrors } from './dto/error.dto';

@ApiTags('clients (admin)')
@ApiSecurity('api-key')
@ApiBearerAuth()
@ApiErrors(401, 403, 429, 503)
@AdminOnly()
@Controller('api/clients')
export class ClientController {
  constructor(private readonly clients: ClientService) {}

  @Post()
  @ApiOperation({ summary: 'Create a client; its API key is shown only in this response' })
  @ApiCreatedResponse({ type: ClientKeyDto })
  @ApiErrors(400, 409)
  create(@Body() dto: ClientCreateDto): Promise<ClientKeyDto> {
    return this.clients.create(dto);
  }

  @Get()
  @ApiOperation({ summary: 'All clients (never their keys)' })
  @ApiOkResponse({ type: [ClientResponseDto] })
  async list(): Promise<ClientResponseDto[]> {
    return (await this.clients.list()).map(toResponse);
  }

  @Patch(':id')
  @ApiOperation({ summary: "Change a client's targets, sources, admin flag or rate limit; from its next request on" })
  @ApiOkResponse({ type: ClientResponseDto })
  @ApiErrors(400, 404)
  async update(@Param() { id }: ClientIdDto, @Body() dto: ClientUpdateDto): Promise<ClientResponseDto> {
    return toResponse(await this.clients.update(id, dto));
  }

  @Post(':id/rotate-key')
  @HttpCode(200)
  @ApiOperation({ summary: "Replace the client's key; the old one stops working at once" })
  @ApiOkResponse({ type: ClientKeyDto })
  @ApiErrors(404)
  rotateKey(@Param() { id }: ClientIdDto): Promise<ClientKeyDto> {
    return this.clients.rotateKey(id);
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Revoke the client: its key stops working at once' })
  @ApiNoContentResponse()
  @ApiErrors(404)
  async revoke(@Param() { id }: ClientIdDto): Promise<void> {
    await this.clients.revoke(id);
  }
}

function toResponse(client: ClientEntity): ClientResponseDto {
  return {
    id: client.id,
    name: client.name,
    targets: client.targets,
    sources: client.sources,
    admin: client.admin,
    rateLimitPerSecond: client.rateLimitPerSecond,
    createdAt: client.createdAt.toISOString(),
    revokedAt: client.revokedAt?.toISOString() ?? null,
  };
}
