// NestJS 11 on its Express platform: a controller method that takes the
// response with @Res() and gives it to an EventEndpoint.
//
//   npx tsc -p examples/frameworks/nestjs   (after `npm ci && npm run build`)
//   node examples/frameworks/nestjs/dist/main.js
//   curl -N http://127.0.0.1:3000/events
import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventsController } from './events.controller';

@Module({ controllers: [EventsController] })
class AppModule {}

async function main(): Promise<void> {
  const app = await NestFactory.create(AppModule, { logger: ['error', 'warn'] });
  app.enableShutdownHooks();
  await app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1');
  const { port } = app.getHttpServer().address();
  console.log(`NestJS example: http://127.0.0.1:${port}/events`);
}

void main();
