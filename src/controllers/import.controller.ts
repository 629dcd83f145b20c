import { Controller, HttpCode, Post, Req } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBearerAuth,
  ApiConsumes,
  ApiOperation,
  ApiQuery,
  ApiSecurity,
  ApiTags,
} from '@nestjs/swagger';
import type { Request } from 'express';
import { AuthenticatedClient } from '../services/access/client.service';
import { ImportUploads } from '../services/imports/import-uploads.service';
import { Caller } from './auth';
import { ApiErrors } from './dto/error.dto';
import { JobExecutionDto } from './dto/job.dto';

/** Imports (docs/api.md#imports): a data set uploaded as the request body, loaded by the job `import`. */
@ApiTags('jobs')
@ApiSecurity('api-key')
@ApiBearerAuth()
@ApiErrors(401, 429, 503)
@Controller('api/imports')
export class ImportController {
  constructor(private readonly uploads: ImportUploads) {}

  @Post()
  @HttpCode(202)
  @ApiOperation({
    summary: 'Upload a CSV or NDJSON data set (optionally gzip) into a target table: answered once it is stored',
  })
  @ApiConsumes('text/csv', 'application/x-ndjson')
  @ApiQuery({ name: 'target', required: true })
  @ApiQuery({ name: 'mode', required: false, enum: ['insert', 'upsert'] })
  @ApiQuery({ name: 'conflictKey', required: false })
  @ApiQuery({ name: 'format', required: false, enum: ['csv', 'ndjson'] })
  @ApiQuery({ name: 'header', required: false, type: Boolean })
  @ApiQuery({ name: 'columns', required: false })
  @ApiQuery({ name: 'delimiter', required: false })
  @ApiQuery({ name: 'quote', required: false })
  @ApiQuery({ name: 'null', required: false })
  @ApiQuery({ name: 'skipLimit', required: false, type: Number })
  @ApiQuery({ name: 'chunkSize', required: false, type: Number })
  @ApiQuery({ name: 'runId', required: false })
  @ApiAcceptedResponse({ type: JobExecutionDto })
  @ApiErrors(400, 403, 408, 409, 413)
  upload(@Caller() client: AuthenticatedClient, @Req() request: Request): Promise<JobExecutionDto> {
    return this.uploads.upload(
      client,
      {
        query: request.query,
        contentType: request.headers['content-type'],
        contentEncoding: request.headers['content-encoding'],
      },
      request,
    );
  }
}
