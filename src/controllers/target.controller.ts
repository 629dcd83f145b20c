import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiProperty, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { CatalogService } from '../services/storage/catalog.service';
import { AuthenticatedClient } from '../services/access/client.service';
import { Caller } from './auth';
import { ApiErrors } from './dto/error.dto';

class TargetColumnDto {
  @ApiProperty() name: string;
  @ApiProperty({ example: 'character varying(20)' }) type: string;
  @ApiProperty() nullable: boolean;
  @ApiProperty() hasDefault: boolean;
}

class TargetDto {
  @ApiProperty({ example: 'public.reservations', description: '`database:schema.table` outside the main database' })
  name: string;
  @ApiProperty({ example: 'main', description: "`main` (the service's own) or a name of BATCH_DATABASES" })
  database: string;
  @ApiProperty({ type: [TargetColumnDto] }) columns: TargetColumnDto[];
  @ApiProperty({ type: [String], nullable: true }) primaryKey: string[] | null;
  @ApiProperty({ type: 'array', items: { type: 'array', items: { type: 'string' } } }) uniqueKeys: string[][];
}

@ApiTags('targets')
@ApiSecurity('api-key')
@ApiBearerAuth()
@ApiErrors(401, 429, 503)
@Controller('api/targets')
export class TargetController {
  constructor(private readonly catalog: CatalogService) {}

  @Get()
  @ApiOperation({ summary: 'The target tables this client may write, with columns, types and keys' })
  @ApiOkResponse({ type: [TargetDto] })
  async list(@Caller() client: AuthenticatedClient): Promise<TargetDto[]> {
    return (await this.catalog.list())
      .filter((t) => client.mayWrite(t.name))
      .map((t) => ({
        name: t.name,
        database: t.database,
        columns: [...t.columns.values()].map((c) => ({
          name: c.name,
          type: c.sqlType,
          nullable: !c.notNull,
          hasDefault: c.hasDefault,
        })),
        primaryKey: t.primaryKey,
        uniqueKeys: t.uniqueKeys,
      }));
  }
}
