import { Injectable } from '@nestjs/common';
import { Wakeup } from '../worker-loop';

/** Notified once a chunk's worth of operations was stored, in this process or another (PollerWakeupBroadcast): the poller has work. */
@Injectable()
export class PollerWakeup extends Wakeup {}
