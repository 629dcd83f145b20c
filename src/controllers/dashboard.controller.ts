import { Controller, Get, Header } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { DASHBOARD_CONTENT_SECURITY_POLICY, DASHBOARD_HTML } from '../dashboard/page';
import { Public } from './auth';

/** `GET /`: the operator's dashboard. The page needs no key; it asks for one and sends it with its API calls. */
@ApiExcludeController()
@Public()
@Controller()
export class DashboardController {
  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  @Header('Content-Security-Policy', DASHBOARD_CONTENT_SECURITY_POLICY)
  @Header('X-Content-Type-Options', 'nosniff')
  @Header('Referrer-Policy', 'no-referrer')
  @Header('Cache-Control', 'no-cache')
  page(): string {
    return DASHBOARD_HTML;
  }
}
