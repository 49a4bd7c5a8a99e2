<?php

/**
 * Starts and drives tests/receiver.py, the signature-checking stand-in for the sidecar.
 *
 * @package KeycrmBridge\Tests
 */

final class Receiver
{
    /** @var resource|null */
    private $process = null;
    /** @var array<int, resource> */
    private array $pipes = [];

    private function __construct(public string $secret, public int $port)
    {
    }

    public static function start(string $secret, int $port = 0): self
    {
        $receiver = new self($secret, $port);
        $receiver->launch();
        return $receiver;
    }

    private function launch(): void
    {
        $env = $GLOBALS['kcb_test_env'];
        $schema = dirname($env['plugin_dir']) . '/sidecar/keycrm_bridge/schema/events.schema.json';
        $command = [
            'python3', $env['plugin_dir'] . '/tests/receiver.py', '--secret', $this->secret,
            '--schema', $schema, '--port', (string) $this->port,
        ];
        $log = $env['env_dir'] . '/receiver.log';
        $this->process = proc_open($command, [0 => ['file', '/dev/null', 'r'], 1 => ['pipe', 'w'], 2 => ['file', $log, 'a']], $this->pipes);
        if (!is_resource($this->process)) {
            throw new RuntimeException('could not start the receiver');
        }
        $read = [$this->pipes[1]];
        $write = $except = null;
        if (stream_select($read, $write, $except, 20) !== 1) {
            throw new RuntimeException('receiver did not report its port; see ' . $log);
        }
        $line = (string) fgets($this->pipes[1]);
        if (!preg_match('/^PORT (\d+)/', $line, $m)) {
            throw new RuntimeException('unexpected receiver output: ' . $line);
        }
        $this->port = (int) $m[1];
    }

    public function url(): string
    {
        return 'http://127.0.0.1:' . $this->port;
    }

    public function isRunning(): bool
    {
        return is_resource($this->process) && proc_get_status($this->process)['running'];
    }

    /** Stop the process (the port then refuses connections). */
    public function stop(): void
    {
        if (!is_resource($this->process)) {
            return;
        }
        proc_terminate($this->process, 15);
        $deadline = microtime(true) + 10;
        while (proc_get_status($this->process)['running'] && microtime(true) < $deadline) {
            usleep(20000);
        }
        if (proc_get_status($this->process)['running']) {
            proc_terminate($this->process, 9);
        }
        foreach ($this->pipes as $pipe) {
            if (is_resource($pipe)) {
                fclose($pipe);
            }
        }
        proc_close($this->process);
        $this->process = null;
    }

    /** Start again on the same port: the sidecar "comes back". */
    public function restart(): void
    {
        $this->stop();
        $this->launch();
    }

    /** @param array<string, mixed> $command */
    public function control(array $command): void
    {
        $response = Http::request('POST', $this->url() . '/_control', (string) json_encode($command), ['Content-Type: application/json']);
        if ($response['status'] !== 200) {
            throw new RuntimeException('receiver control failed: ' . $response['body']);
        }
    }

    public function reset(): void
    {
        Http::request('POST', $this->url() . '/_reset', '{}');
    }

    /** @return array{batches: array<int, array<string, mixed>>, refused: array<int, mixed>} */
    public function recorded(): array
    {
        $response = Http::request('GET', $this->url() . '/_batches');
        return json_decode($response['body'], true);
    }

    /** @return array<int, array<string, mixed>> Events of accepted (schema-valid) batches, in arrival order. */
    public function events(): array
    {
        $events = [];
        foreach ($this->recorded()['batches'] as $entry) {
            if ($entry['valid']) {
                array_push($events, ...$entry['batch']['events']);
            }
        }
        return $events;
    }
}
