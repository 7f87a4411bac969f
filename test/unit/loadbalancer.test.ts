/**
 * apphost:host.count > 1 on ec2: the Application Load Balancer and the
 * instances behind it, against the shared mocks (policy-style assertions on
 * the registered inputs, outputs awaited), and the config rules.
 */
import { MOCK, ofType, resetRecords, settled, sgId, valueOf } from "./mocks"; // first: sets the mocks
import * as assert from "assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { firewallRules, Host, stackIdentity } from "../../components/host";
import { ALB_SSL_POLICY, LoadBalancer } from "../../components/loadbalancer";
import { renderCaddySite } from "../../components/render/caddy";
import { hostLayout } from "../../components/paths";
import { configProblems, baseRaw, DEPLOY_KEY, stackConfig, withKeys } from "./fixtures";

type Inputs = Record<string, unknown>;

const MULTI = {
  "host.count": 3,
  "tls.mode": "acm",
  "database.kind": "rds",
  "dns.hostnames": [{ name: "shop.example.com", proxied: true }, { name: "www.shop.example.com" }],
};

const problems = (keys: Record<string, unknown>) => configProblems(withKeys(baseRaw(), keys));

describe("apphost:host.count (config)", () => {
  it("parses three instances with the ALB's certificate and RDS", () => {
    const c = stackConfig(MULTI);
    assert.ok(c.host.kind === "ec2" && c.host.count === 3);
    assert.equal(c.tls.mode, "acm");
  });

  it("lists every offender at once: SQLite, a TLS mode the ALB does not serve, DNS elsewhere, nginx, one subnet", () => {
    assert.deepEqual(
      problems({
        ...MULTI,
        "database.kind": "sqlite",
        "tls.mode": "caddy-acme",
        "dns.provider": "none",
        "dns.zone": undefined,
        "proxy.kind": "nginx",
        "host.subnetId": "subnet-0123456789abcdef0",
      }),
      [
        'apphost:dns.hostnames[0].proxied: only used when apphost:dns.provider is cloudflare (with "none" you manage DNS yourself); remove it or set apphost:dns.provider to cloudflare',
        'apphost:tls.mode: "caddy-acme" needs apphost:proxy.kind "caddy" (Caddy obtains the certificates itself), got "nginx"; set apphost:proxy.kind to caddy, or use tls.mode certbot with nginx',
        'apphost:database.kind: "sqlite" keeps the data on one app host, and apphost:host.count lists 3; use "external" with the URL of a Postgres that lives on none of them (pulumi config set --secret apphost:databaseUrl postgresql://user:password@host:5432/name), or "rds"',
        'apphost:tls.mode: with apphost:host.count 3 the load balancer serves TLS with an ACM certificate: set "acm" (got "caddy-acme")',
        'apphost:dns.provider: with apphost:host.count 3 the ACM certificate is validated through DNS records apphost creates, and the hostnames point at the load balancer: set "cloudflare" (got "none")',
        'apphost:proxy.kind: behind the load balancer the instances run Caddy; got "nginx", set "caddy"',
        "apphost:host.subnetId: one subnet for 3 instances; list two subnets in different availability zones at least in apphost:host.subnetIds (or neither, for the default VPC's), and remove subnetId",
      ],
    );
  });

  it('"acm" and subnetIds need more than one instance; count is ec2\'s', () => {
    assert.deepEqual(problems({ "tls.mode": "acm", "host.subnetIds": ["subnet-0123456789abcdef0"] }), [
      'apphost:tls.mode: "acm" is the load balancer\'s certificate, used with apphost:host.count > 1; with one instance use "caddy-acme" or "cloudflare-origin"',
      "apphost:host.subnetIds: only used with apphost:host.count > 1 (use subnetId for one instance); remove it",
    ]);
  });
});

describe("the load balancer and the instances behind it (mocks)", () => {
  let lb: LoadBalancer;
  let host: Host;
  const config = stackConfig(MULTI);
  const hostArgs = {
    identity: stackIdentity(config),
    host: config.host,
    webPorts: config.proxy,
    ipv6: config.dns.ipv6,
  };

  before(async () => {
    resetRecords();
    lb = new LoadBalancer("alb", {
      identity: stackIdentity(config),
      hostnames: config.dns.hostnames,
      targetPort: config.proxy.httpPort,
      healthPath: config.app.healthPath,
      drainSeconds: config.releases.drainSeconds,
      vpcId: MOCK.defaultVpcId,
      subnetIds: ["subnet-0default0000000001", "subnet-0default0000000002"],
      zoneId: MOCK.zoneId,
    });
    host = new Host("host2", {
      ...hostArgs,
      sshPrivateKey: pulumi.secret(DEPLOY_KEY.privateKey),
      behindLoadBalancer: {
        vpcId: MOCK.defaultVpcId,
        subnetId: "subnet-0default0000000002",
        securityGroupId: lb.securityGroupId,
      },
    });
    lb.attach(
      "app2",
      host.instanceId.apply((id) => id ?? ""),
      [],
    );
    await settled(lb, host, ...lb.nodes.records, ...lb.nodes.attachments);
    await valueOf(lb.nodes.https.arn);
    await valueOf(lb.nodes.validation.certificateArn);
  });

  it("policy: the instances are not reachable from the internet on the app port; HTTP comes from the load balancer's group", () => {
    const rules = ofType("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "host2-in-");
    const web = rules.filter((r) => [80, 443].includes(r.inputs.fromPort as number));
    assert.deepEqual(
      web.map((r) => ({
        port: r.inputs.fromPort,
        cidr: r.inputs.cidrIpv4,
        from: r.inputs.referencedSecurityGroupId,
      })),
      [{ port: 80, cidr: undefined, from: sgId("alb-sg") }],
    );
    assert.ok(!rules.some((r) => r.inputs.cidrIpv4 === "0.0.0.0/0" || r.inputs.cidrIpv6 === "::/0"));
    // SSH stays as the config says.
    assert.ok(rules.some((r) => r.inputs.fromPort === 22 && r.inputs.cidrIpv4 === "203.0.113.7/32"));
    const instance = ofType("aws:ec2/instance:Instance", "host2")[0];
    assert.equal(instance.inputs.subnetId, "subnet-0default0000000002");
    assert.deepEqual(
      firewallRules(hostArgs, true).ingress.map((r) => r.id),
      ["http-from-lb", "ssh-203-0-113-7-32"],
    );
  });

  it("policy: the HTTPS listener allows TLS 1.2 and later only; HTTP redirects to HTTPS", () => {
    const listeners = ofType("aws:lb/listener:Listener", "alb-");
    const https = listeners.find((l) => l.inputs.protocol === "HTTPS")!;
    assert.equal(https.inputs.sslPolicy, ALB_SSL_POLICY);
    assert.match(ALB_SSL_POLICY, /TLS13-1-2/);
    assert.equal(https.inputs.port, 443);
    const http = listeners.find((l) => l.inputs.protocol === "HTTP")!;
    assert.deepEqual((http.inputs.defaultActions as Inputs[])[0], {
      type: "redirect",
      redirect: { protocol: "HTTPS", port: "443", statusCode: "HTTP_301" },
    });
    const alb = ofType("aws:lb/loadBalancer:LoadBalancer", "alb")[0];
    assert.equal(alb.inputs.internal, false);
    assert.equal(alb.inputs.dropInvalidHeaderFields, true);
    assert.equal((alb.inputs.subnets as string[]).length, 2);
  });

  it("the target group checks apphost:app.healthPath and drains for apphost:releases.drainSeconds", () => {
    const tg = ofType("aws:lb/targetGroup:TargetGroup", "alb-tg")[0];
    assert.equal((tg.inputs.healthCheck as Inputs).path, config.app.healthPath);
    assert.equal(tg.inputs.deregistrationDelay, config.releases.drainSeconds);
    assert.equal(tg.inputs.port, 80);
    const attachment = ofType("aws:lb/targetGroupAttachment:TargetGroupAttachment", "alb-app2")[0];
    assert.equal(attachment.inputs.targetId, "i-0123456789abcdef0");
  });

  it("the ACM certificate is validated through Cloudflare records; the hostnames are CNAMEs to the load balancer", () => {
    const cert = ofType("aws:acm/certificate:Certificate", "alb-cert")[0];
    assert.deepEqual(
      {
        domainName: cert.inputs.domainName,
        sans: cert.inputs.subjectAlternativeNames,
        method: cert.inputs.validationMethod,
      },
      { domainName: "shop.example.com", sans: ["www.shop.example.com"], method: "DNS" },
    );
    const records = ofType("cloudflare:index/dnsRecord:DnsRecord", "alb-");
    const validation = records.filter((r) => r.name.startsWith("alb-validation-"));
    assert.deepEqual(
      validation.map((r) => [r.name, r.inputs.name, r.inputs.content, r.inputs.proxied]),
      [
        [
          "alb-validation-shop-example-com",
          "_x1.shop.example.com",
          "_y1.shop-example-com.acm-validations.aws",
          false,
        ],
        [
          "alb-validation-www-shop-example-com",
          "_x1.www.shop.example.com",
          "_y1.www-shop-example-com.acm-validations.aws",
          false,
        ],
      ],
    );
    const cnames = records.filter((r) => r.name.endsWith("-cname"));
    assert.deepEqual(
      cnames.map((r) => [r.inputs.name, r.inputs.type, r.inputs.content, r.inputs.proxied, r.inputs.ttl]),
      [
        ["shop.example.com", "CNAME", "alb-1234567890.eu-central-1.elb.amazonaws.com", true, 1],
        ["www.shop.example.com", "CNAME", "alb-1234567890.eu-central-1.elb.amazonaws.com", false, 300],
      ],
    );
  });

  it("an instance's proxy behind it answers every Host on HTTP and trusts private addresses' X-Forwarded-*", () => {
    const site = renderCaddySite(hostLayout("apphost", "staging"), {
      hostnames: ["shop.example.com"],
      tls: { mode: "off" },
      proxy: config.proxy,
      app: config.app,
      balancer: {},
    });
    assert.match(site, /^:80 \{$/m);
    assert.ok(site.includes("\t\t\ttrusted_proxies private_ranges\n"));
    assert.ok(!site.includes("@outside"));
  });
});
